using JestMesh.ServiceDefaults;
using JestMesh.Trainer;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddTrainerServices();

var app = builder.Build();
app.MapDefaultEndpoints();
app.Run();

/// <summary>Entry point, public so tests can host the trainer.</summary>
public partial class Program;
