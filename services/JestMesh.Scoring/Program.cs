using JestMesh.Scoring;
using JestMesh.ServiceDefaults;

// Before any torch call: libtorch's OpenMP workers must not spin on a busy node (TorchRuntime).
JestMesh.Models.TorchRuntime.PreferPassiveWait();
var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddScoringServices();

var app = builder.Build();
app.MapDefaultEndpoints();
app.Run();
