using JestMesh.Scoring;
using JestMesh.ServiceDefaults;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddScoringServices();

var app = builder.Build();
app.MapDefaultEndpoints();
app.Run();
