using System.CommandLine;
using JestMesh.Cli.Demo;

namespace JestMesh.Cli.Commands;

/// <summary><c>./jestmesh chaos</c>: SIGKILL trials against the local cluster, checked for exactly-once effects and exact resumption.</summary>
internal static class ChaosCommand
{
    public static Command Create()
    {
        var trials = new Option<int>("--trials") { Description = "Trials, one kill each (1 to 1000).", DefaultValueFactory = _ => 20 };
        var seed = new Option<int>("--seed") { Description = "Seed of the kill plan: component, replica and moment of every trial.", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Directory for chaos.json, the trials' trainer files and every process's log.", Required = true };
        var steps = new Option<int>("--steps") { Description = "Learner steps per trainer per trial (T).", DefaultValueFactory = _ => 120 };
        var batch = new Option<int>("--batch-size") { Description = "Learner batch b (N = 5b candidates at f = 0.8).", DefaultValueFactory = _ => 32 };
        var deadline = new Option<int>("--trial-deadline") { Description = "Seconds a trial may take; one that does not finish is stopped and reported as failed, with why.", DefaultValueFactory = _ => 300 };
        var components = new Option<string>("--components") { Description = "Comma-separated kinds of component to kill: broker, scoring, selection, trainer.", DefaultValueFactory = _ => string.Join(',', ChaosComponents.All) };
        var reference = new Option<string?>("--reference") { Description = "Reference checkpoint directory (default .jestmesh/reference; trained there when missing)." };
        var command = new Command("chaos", "Runs the local cluster (3 broker nodes, 2 Scoring, 2 Selection, trainers on 2 jobs) and SIGKILLs one component per trial; " +
            "checks every example had exactly one effect and every trainer trained exactly its session's batches; writes DIR/chaos.json.");
        foreach (var o in new Option[] { trials, seed, output, steps, batch, deadline, components, reference })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            using var stop = StopSignal.Listen(cancellationToken);
            try
            {
                var n = parse.GetValue(trials);
                var t = parse.GetValue(steps);
                var b = parse.GetValue(batch);
                if (n is < 1 or > 1000)
                {
                    throw new ArgumentException($"--trials {n}: give 1 to 1000.");
                }

                if (t < CheckpointFloor)
                {
                    throw new ArgumentException($"--steps {t}: give at least {CheckpointFloor} (a trial needs a few checkpoints to resume from).");
                }

                if (b is < 8 or > 512)
                {
                    throw new ArgumentException($"--batch-size {b}: give 8 to 512.");
                }

                var options = new ChaosOptions
                {
                    Trials = n,
                    Seed = parse.GetValue(seed),
                    Out = parse.GetValue(output)!,
                    Steps = t,
                    BatchSize = b,
                    TrialDeadline = TimeSpan.FromSeconds(Math.Max(30, parse.GetValue(deadline))),
                    Reference = parse.GetValue(reference),
                    Components = parse.GetValue(components)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                };
                return await new ChaosRunner(options, Repo.Locate(), Console.Out).RunAsync(stop.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                Console.Out.WriteLine("chaos: stopped; everything it started was stopped (chaos.json holds the trials done).");
                return 130;
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or TimeoutException or IOException)
            {
                Console.Error.WriteLine($"chaos: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    private const int CheckpointFloor = 30;
}
