using JestMesh.ServiceDefaults;
using JestMesh.Trainer;

// Before any torch call: libtorch's OpenMP workers must not spin on a busy node (TorchRuntime).
JestMesh.Models.TorchRuntime.PreferPassiveWait();
var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddTrainerServices();

var app = builder.Build();
app.MapDefaultEndpoints();
app.Run();

/// <summary>Entry point, public so tests can host the trainer.</summary>
public partial class Program;
