using System.CommandLine;
using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Messaging;
using JestMesh.ServiceDefaults;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JestMesh.Cli.Commands;

/// <summary><c>./jestmesh ingest</c>: publish a job's super-batches to the broker once, with backpressure.</summary>
internal static class IngestCommand
{
    public static Command Create()
    {
        var amqp = new Option<string>("--amqp") { Description = "AMQP URI of the broker (default: $JESTMESH_AMQP_URI or the local broker)", DefaultValueFactory = _ => DefaultAmqpUri() };
        var prefix = new Option<string>("--queue-prefix") { Description = "Queue name prefix", DefaultValueFactory = _ => "jestmesh" };
        var job = new Option<string>("--job") { Description = "Job (training run) the super-batches belong to", Required = true };
        var size = new Option<int>("--super-batch-size") { Description = "Examples per super-batch (N)", DefaultValueFactory = _ => 640 };
        var count = new Option<int>("--super-batches") { Description = "Stop after this many (0 = every full super-batch)", DefaultValueFactory = _ => 0 };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the pool", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Data seed (pool noise, captions, epoch shuffles)", DefaultValueFactory = _ => 0 };
        var swapped = new Option<double>("--swapped-share") { Description = "Share of pool captions swapped for wrong ones", DefaultValueFactory = _ => 0.7 };
        var dataDir = new Option<string>("--data-dir") { Description = "Fashion-MNIST directory", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var maxQueue = new Option<int>("--max-queue") { Description = "Length limit of the input queue (backpressure)", DefaultValueFactory = _ => 32 };
        var command = new Command("ingest", "Publish a job's super-batches of the noisy Fashion-MNIST pool to jestmesh.superbatches.");
        foreach (var option in new Option[] { amqp, prefix, job, size, count, epochs, seed, swapped, dataDir, maxQueue })
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
            var ingest = new IngestOptions
            {
                Job = parse.GetValue(job)!,
                SuperBatchSize = parse.GetValue(size),
                MaxSuperBatches = parse.GetValue(count),
                Epochs = parse.GetValue(epochs),
                DataSeed = parse.GetValue(seed),
                SwappedShare = parse.GetValue(swapped),
                DataDirectory = parse.GetValue(dataDir)!,
            };
            var errors = ValidatedOptions.Validate(messaging, MessagingOptions.SectionName)
                .Concat(ValidatedOptions.Validate(ingest, IngestOptions.SectionName)).ToList();
            if (errors.Count > 0)
            {
                foreach (var error in errors)
                {
                    await Console.Error.WriteLineAsync($"ingest: invalid setting {error}");
                }
                return 2;
            }
            using var logging = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true));
            await using var connections = new BrokerConnections(Options.Create(messaging), logging.CreateLogger<BrokerConnections>());
            await using var publisher = new ConfirmedPublisher(connections, logging.CreateLogger<ConfirmedPublisher>());
            var runner = new IngestRunner(connections, publisher, Options.Create(ingest), logging.CreateLogger<IngestRunner>());
            var data = PairDataset.Build(ingest.ToDataOptions());
            var result = await runner.RunAsync(data, cancellationToken);
            Console.WriteLine($"ingest: job {ingest.Job}: {result.SuperBatches} super-batches, {result.Examples} examples, {result.BackpressureWaits} backpressure waits");
            return 0;
        });
        return command;
    }

    public static string DefaultAmqpUri() =>
        Environment.GetEnvironmentVariable("JESTMESH_AMQP_URI") is { Length: > 0 } uri ? uri : "amqp://guest:guest@127.0.0.1:5679/";
}
