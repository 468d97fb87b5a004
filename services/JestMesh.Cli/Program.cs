using System.CommandLine;
using JestMesh.Cli;

var root = new RootCommand("JestMesh: online data curation with JEST (joint example selection).");
foreach (var command in CommandCatalog.All())
{
    root.Subcommands.Add(command);
}

return await root.Parse(args).InvokeAsync();
