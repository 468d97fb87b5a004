using System.CommandLine;
using JestMesh.Cli.Demo;
using JestMesh.Learning;

namespace JestMesh.Cli.Commands;

/// <summary><c>./jestmesh up</c>: the local stack for a user's own trainer, in the foreground.</summary>
internal static class UpCommand
{
    public static Command Create()
    {
        var jobs = new Option<string[]>("--job") { Description = "A job to publish the pool for (repeatable; default one job, default).", AllowMultipleArgumentsPerToken = false };
        var state = new Option<string>("--state") { Description = "Directory for the broker's data (and so Selection's batch log), Scoring's cache and the logs; kept, so a restart resumes sessions.", DefaultValueFactory = _ => ".jestmesh/up" };
        var reference = new Option<string?>("--reference")
        {
            Description = "Reference checkpoint directory: reused when its SHA-256 and data settings match, trained there otherwise (default .jestmesh/reference); " +
                "or a reference bundle exported from PyTorch (a directory with reference.json), used as it is.",
        };
        var data = new Option<string?>("--data") { Description = "Directory of WebDataset .tar shards every job publishes instead of the built-in Fashion-MNIST pool." };
        var port = new Option<int>("--port") { Description = $"Selection's gRPC port on 127.0.0.1 (refused if taken).", DefaultValueFactory = _ => UpOptions.DefaultPort };
        var apiKey = new Option<string?>("--api-key") { Description = "The key trainers must send (at least 16 characters; default: generated and printed)." };
        var maxSuperBatches = new Option<int>("--max-super-batches")
        {
            Description = "Super-batches Ingest publishes per job, then stops publishing (0: no end). A job's backlog of scored super-batches is bounded by Ingest:MaxAhead either way.",
            DefaultValueFactory = _ => 0,
        };
        var command = new Command("up", "Start a private broker, Scoring, Selection and one Ingest per job on loopback, in the foreground, for your own trainer; Ctrl-C stops it.");
        var cluster = new Option<int>("--cluster") { Description = "RabbitMQ nodes: 1, or 3 for a cluster on loopback whose quorum queues and batch log are replicated on every node (the services fail over between nodes).", DefaultValueFactory = _ => 1 };
        var scoringReplicas = new Option<int>("--scoring-replicas") { Description = "Scoring processes, competing consumers of the super-batch queue (1 to 8), each with its own reference-embedding cache.", DefaultValueFactory = _ => 1 };
        var selectionReplicas = new Option<int>("--selection-replicas")
        {
            Description = "Selection processes (1 to 8) on consecutive ports from --port; one holds a job at a time, the others refuse it so a trainer given every address moves on.",
            DefaultValueFactory = _ => 1,
        };
        foreach (var o in new Option[] { jobs, state, reference, data, port, apiKey, maxSuperBatches, cluster, scoringReplicas, selectionReplicas })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            using var stop = StopSignal.Listen(cancellationToken);
            try
            {
                var names = parse.GetValue(jobs) is { Length: > 0 } j ? j : ["default"];
                if (names.FirstOrDefault(n => n.Length == 0 || !n.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) is { } bad)
                {
                    throw new ArgumentException($"--job '{bad}': use letters, digits, '-', '_' and '.'.");
                }

                if (parse.GetValue(cluster) is var nodes and (< 1 or > 7))
                {
                    throw new ArgumentException($"--cluster {nodes}: give 1 (one broker) or 3 (a cluster; up to 7 nodes).");
                }

                if (parse.GetValue(scoringReplicas) is var scorers and (< 1 or > 8))
                {
                    throw new ArgumentException($"--scoring-replicas {scorers}: give 1 to 8.");
                }

                if (parse.GetValue(selectionReplicas) is var selectors and (< 1 or > 8))
                {
                    throw new ArgumentException($"--selection-replicas {selectors}: give 1 to 8.");
                }

                var options = new UpOptions
                {
                    Cluster = parse.GetValue(cluster),
                    ScoringReplicas = parse.GetValue(scoringReplicas),
                    SelectionReplicas = parse.GetValue(selectionReplicas),
                    Jobs = [.. names.Distinct(StringComparer.Ordinal)],
                    State = parse.GetValue(state)!,
                    Reference = parse.GetValue(reference),
                    Data = parse.GetValue(data),
                    Port = parse.GetValue(port),
                    ApiKey = parse.GetValue(apiKey),
                    MaxSuperBatches = parse.GetValue(maxSuperBatches),
                };
                return await new UpRunner(options, Repo.Locate(), Console.Out).RunAsync(stop.Token);
            }
            catch (Exception e) when (stop.IsCancellationRequested && e is OperationCanceledException or InvalidOperationException or TimeoutException)
            {
                // Ctrl-C in a terminal also reaches the services (one process group): one may exit before `up` sees the signal.
                Console.Out.WriteLine("up: stopped before it was ready; everything it started was stopped.");
                return 0;
            }
            catch (BundleException e)
            {
                Console.Error.WriteLine($"up: {e.Message}");
                return 2;
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or TimeoutException or IOException)
            {
                Console.Error.WriteLine($"up: {e.Message}");
                return 1;
            }
        });
        return command;
    }
}
