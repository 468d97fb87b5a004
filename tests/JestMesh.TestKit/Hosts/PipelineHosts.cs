using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Messaging;
using JestMesh.Trainer;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging.Abstractions;

namespace JestMesh.TestKit;

/// <summary>The real Selection (on Kestrel), Scoring and Ingest hosts of one pipeline, and what Ingest published.</summary>
public sealed class Pipeline(SelectionHost selection, WebApplication scoring, WebApplication ingest, IngestResult produced) : IAsyncDisposable
{
    public SelectionHost Selection { get; } = selection;

    public IngestResult Produced { get; } = produced;

    public async ValueTask DisposeAsync()
    {
        await ingest.DisposeAsync();
        await scoring.DisposeAsync();
        await Selection.DisposeAsync();
    }
}

/// <summary>Starts the real Ingest, Scoring and Selection hosts in the test process, on the test broker, and runs a trainer against them.</summary>
public static class PipelineHosts
{
    /// <summary>
    /// Starts Selection, Scoring (with <paramref name="reference"/>) and Ingest, and waits until Ingest
    /// published <paramref name="superBatches"/> super-batches of <paramref name="n"/> for <paramref name="job"/>.
    /// </summary>
    public static async Task<Pipeline> StartAsync(MessagingOptions messaging, string reference, PairDataset data,
        string job, int n, int superBatches, int orderSeed = 0)
    {
        ArgumentNullException.ThrowIfNull(data);
        var selection = await SelectionHost.StartAsync(messaging, kestrel: true);
        WebApplication? scoring = null;
        WebApplication? ingest = null;
        try
        {
            scoring = await ServiceHosts.StartScoringAsync(messaging, reference, data.Fingerprint);
            (ingest, var worker) = await ServiceHosts.StartIngestAsync(messaging, job, n, superBatches, data.Options, orderSeed);
            var produced = await worker.Completion.Within(TimeSpan.FromMinutes(3), $"Ingest to publish {superBatches} super-batches");
            return new Pipeline(selection, scoring, ingest, produced);
        }
        catch
        {
            if (ingest is not null)
            {
                await ingest.DisposeAsync();
            }
            if (scoring is not null)
            {
                await scoring.DisposeAsync();
            }
            await selection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs a trainer with <paramref name="options"/> to its last step; returns the batches it trained, in order.</summary>
    public static async Task<List<Protos.V1.CuratedBatch>> TrainAsync(TrainerOptions options)
    {
        var trained = new List<Protos.V1.CuratedBatch>();
        using var channel = TrainerServiceExtensions.CreateChannel(options);
        using var trainer = new CuratedTrainer(options, channel, null, NullLogger.Instance) { BatchTrained = trained.Add };
        await trainer.RunAsync(CancellationToken.None).Within(TimeSpan.FromMinutes(5), $"the trainer to run {options.Steps} steps");
        return trained;
    }
}
