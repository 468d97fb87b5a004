using System.CommandLine;
using JestMesh.Cli;

// Before any torch call: libtorch's OpenMP workers must not spin on a busy machine (TorchRuntime); hosts started from here inherit it.
JestMesh.Models.TorchRuntime.PreferPassiveWait();
var root = new RootCommand("JestMesh: online data curation with JEST (joint example selection).");
foreach (var command in CommandCatalog.All())
{
    root.Subcommands.Add(command);
}

// Ctrl-C / SIGTERM cancel the command; give it time to stop what it started (the demo's services and broker)
// instead of the default 2 s after which the process is ended regardless.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(90) });
