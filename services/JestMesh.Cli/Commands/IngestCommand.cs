using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using JestMesh.Cli.Demo;
using JestMesh.Data;
using JestMesh.Messaging;
using JestMesh.ServiceDefaults;

namespace JestMesh.Cli.Commands;

/// <summary>
/// <c>./jestmesh ingest</c>: publish a job's super-batches to the broker once, with backpressure. It
/// runs the Ingest service itself (its Release build, as a child process) with these options as its
/// configuration and Ingest:ExitWhenDone, passes its output through and exits with its exit code.
/// </summary>
internal static partial class IngestCommand
{
    public const string Host = "JestMesh.Ingest";

    public static Command Create()
    {
        var amqp = new Option<string>("--amqp") { Description = "AMQP URI of the broker (default: $JESTMESH_AMQP_URI or the local broker)", DefaultValueFactory = _ => DefaultAmqpUri() };
        var prefix = new Option<string>("--queue-prefix") { Description = "Queue name prefix", DefaultValueFactory = _ => "jestmesh" };
        var job = new Option<string>("--job") { Description = "Job (training run) the super-batches belong to", Required = true };
        var size = new Option<int>("--super-batch-size") { Description = "Examples per super-batch (N)", DefaultValueFactory = _ => 640 };
        var count = new Option<int>("--super-batches") { Description = "Stop after this many (0 = every full super-batch)", DefaultValueFactory = _ => 0 };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the pool", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Data seed (pool noise and captions)", DefaultValueFactory = _ => 0 };
        var swapped = new Option<double>("--swapped-share") { Description = "Share of pool captions swapped for wrong ones", DefaultValueFactory = _ => 0.7 };
        var dataDir = new Option<string>("--data-dir") { Description = "Fashion-MNIST directory", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var wds = new Option<string>("--data") { Description = "Directory of WebDataset .tar shards to publish instead of the built-in pool (e.g. OUT/pool of `data wds`)", DefaultValueFactory = _ => "" };
        var maxQueue = new Option<int>("--max-queue") { Description = "Length limit of the input queue (backpressure)", DefaultValueFactory = _ => 32 };
        var command = new Command("ingest", "Publish a job's super-batches of the noisy Fashion-MNIST pool to jestmesh.superbatches (runs the Ingest service once).");
        foreach (var option in new Option[] { amqp, prefix, job, size, count, epochs, seed, swapped, dataDir, wds, maxQueue })
        {
            command.Options.Add(option);
        }
        command.SetAction(async (parse, cancellationToken) =>
        {
            var messaging = new MessagingOptions
            {
                Uri = parse.GetValue(amqp)!,
                QueuePrefix = parse.GetValue(prefix)!,
                InputQueueMaxLength = parse.GetValue(maxQueue),
                ClientName = "jestmesh-ingest-cli",
            };
            var settings = new IngestSettings(parse.GetValue(job)!, parse.GetValue(size), parse.GetValue(count), parse.GetValue(epochs),
                parse.GetValue(seed), parse.GetValue(swapped), parse.GetValue(dataDir)!,
                parse.GetValue(wds) is { Length: > 0 } shards ? Path.GetFullPath(shards) : "");
            var errors = ValidatedOptions.Validate(messaging, MessagingOptions.SectionName).Concat(settings.Problems()).ToList();
            if (errors.Count > 0)
            {
                foreach (var error in errors)
                {
                    await Console.Error.WriteLineAsync($"ingest: invalid setting {error}");
                }
                return 2;
            }
            var repo = Repo.Locate();
            await repo.EnsureBuiltAsync([Host], Console.Error.WriteLine, cancellationToken);
            var dll = repo.HostDll(Host);
            var environment = settings.Environment(messaging);
            environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{Repo.FreePort()}";
            var code = await Repo.RunAsync("dotnet", [dll], Path.GetDirectoryName(dll)!, cancellationToken, environment, Console.WriteLine);
            if (code != 0)
            {
                await Console.Error.WriteLineAsync($"ingest: the Ingest service exited with code {code} (its output is above).");
            }
            return code;
        });
        return command;
    }

    public static string DefaultAmqpUri() =>
        System.Environment.GetEnvironmentVariable("JESTMESH_AMQP_URI") is { Length: > 0 } uri ? uri : "amqp://guest:guest@127.0.0.1:5679/";

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,100}$")]
    private static partial Regex JobName();

    /// <summary>The command's ingest options: checked here under their option names, passed to the service as its Ingest:* settings.</summary>
    private sealed record IngestSettings(string Job, int SuperBatchSize, int SuperBatches, int Epochs, int Seed, double SwappedShare, string DataDirectory, string WebDatasetDirectory)
    {
        /// <summary>
        /// One line per bad option, in the service's own ranges (IngestOptions), so a bad value is
        /// refused before the service is built and started; the service still validates at start.
        /// </summary>
        public IEnumerable<string> Problems()
        {
            if (!JobName().IsMatch(Job))
            {
                yield return $"--job '{Job}': 1 to 100 letters, digits, '_', '.' or '-'.";
            }
            if (SuperBatchSize is < 1 or > 65536)
            {
                yield return $"--super-batch-size {SuperBatchSize}: must be between 1 and 65536.";
            }
            if (SuperBatches < 0)
            {
                yield return $"--super-batches {SuperBatches}: must be 0 (all) or more.";
            }
            if (Epochs is < 1 or > 10_000)
            {
                yield return $"--epochs {Epochs}: must be between 1 and 10000.";
            }
            if (Seed < 0)
            {
                yield return $"--seed {Seed}: must be 0 or more.";
            }
            if (SwappedShare is < 0 or > 1 || double.IsNaN(SwappedShare))
            {
                yield return $"--swapped-share {SwappedShare.ToString(CultureInfo.InvariantCulture)}: must be between 0 and 1.";
            }
            if (string.IsNullOrWhiteSpace(DataDirectory))
            {
                yield return "--data-dir: must name the Fashion-MNIST directory.";
            }
            if (WebDatasetDirectory.Length > 0 && !Directory.Exists(WebDatasetDirectory))
            {
                yield return $"--data {WebDatasetDirectory}: no such directory.";
            }
        }

        /// <summary>The service's configuration as environment variables (README, "Configuration").</summary>
        public Dictionary<string, string> Environment(MessagingOptions messaging) => new()
        {
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["Messaging__Uri"] = messaging.Uri,
            ["Messaging__QueuePrefix"] = messaging.QueuePrefix,
            ["Messaging__InputQueueMaxLength"] = messaging.InputQueueMaxLength.ToString(CultureInfo.InvariantCulture),
            ["Messaging__ClientName"] = messaging.ClientName,
            ["Ingest__Job"] = Job,
            ["Ingest__SuperBatchSize"] = SuperBatchSize.ToString(CultureInfo.InvariantCulture),
            ["Ingest__MaxSuperBatches"] = SuperBatches.ToString(CultureInfo.InvariantCulture),
            ["Ingest__Epochs"] = Epochs.ToString(CultureInfo.InvariantCulture),
            ["Ingest__DataSeed"] = Seed.ToString(CultureInfo.InvariantCulture),
            ["Ingest__SwappedShare"] = SwappedShare.ToString("R", CultureInfo.InvariantCulture),
            ["Ingest__DataDirectory"] = DataDirectory,
            ["Ingest__WebDatasetDirectory"] = WebDatasetDirectory,
            ["Ingest__ExitWhenDone"] = "true",
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
        };
    }
}
