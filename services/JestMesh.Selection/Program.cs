using JestMesh.Selection;
using JestMesh.ServiceDefaults;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddSelectionServices();

var app = builder.Build();
app.MapDefaultEndpoints();
app.MapSelection();
app.Run();

/// <summary>Entry point, public so tests can host the service (WebApplicationFactory-style).</summary>
public partial class Program;
