using System.CommandLine;

namespace JestMesh.Cli;

/// <summary>The user-facing subcommands of <c>./jestmesh</c>, one factory per command.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        // One line per command; each lives in Commands/<Name>Command.cs.
        yield return Commands.BenchSelectionCommand.Create();
        yield return Commands.SelectCommand.Create();
        yield return Commands.DemoCommand.Create();
        yield return Commands.UpCommand.Create();
        yield return Commands.ChaosCommand.Create();
        yield return Commands.ReferenceCommand.Create();
        yield return Commands.TrainCommand.Create();
        yield return Commands.ExperimentCommand.Create();
        yield return Commands.BenchCommand.Create();
        yield return Commands.ReportCommand.Create();
        yield return Commands.IngestCommand.Create();
        yield return Commands.BenchScoringCommand.Create();
        yield return Commands.DataCommand.Create();
        yield return Commands.ScoreCommand.Create();
    }
}
