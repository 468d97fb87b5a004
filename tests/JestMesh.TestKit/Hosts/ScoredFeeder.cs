using System.Diagnostics;
using Google.Protobuf;
using JestMesh.Data;
using JestMesh.Messaging;
using JestMesh.Models;
using JestMesh.Protos.V1;
using TorchSharp;

namespace JestMesh.TestKit;

/// <summary>
/// Makes scored super-batches the way the Scoring service does (real Fashion-MNIST pairs, reference
/// embeddings from a real SigLIP model) and publishes them to jestmesh.scored. Until Scoring lands
/// on main, this is the producer the Selection tests run against.
/// </summary>
public sealed class ScoredFeeder : IDisposable
{
    public static readonly ActivitySource Source = new("JestMesh.Tests.Ingest");

    private readonly SiglipModel _reference;

    public ScoredFeeder(PairDataset data, int referenceSeed = 11)
    {
        Data = data;
        torch.random.manual_seed(referenceSeed);
        _reference = SiglipModel.Create(new ModelConfig(), torch.CPU);
    }

    public PairDataset Data { get; }

    public SiglipModel Reference => _reference;

    /// <summary>Super-batch <paramref name="index"/> of <paramref name="job"/>: pool examples [index·N, (index+1)·N).</summary>
    public ScoredSuperBatch Make(string job, int index, int n, int offset = 0)
    {
        var examples = Data.Pool.Skip(offset + (index * n)).Take(n).ToArray();
        var pixels = new byte[n * ImageSet.PixelsPerImage];
        var tokens = new List<int[]>(n);
        var scored = new ScoredSuperBatch { Id = $"{job}-sb{index}", Job = job, Sequence = index, DataFingerprint = Data.Fingerprint, ReferenceCheckpointSha256 = "test-reference" };
        for (var i = 0; i < n; i++)
        {
            var pair = examples[i];
            Data.Train.Image(pair.ImageIndex).CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
            tokens.Add(pair.Tokens);
            var example = new Example
            {
                Id = pair.Id,
                Image = ByteString.CopyFrom(Data.Train.Image(pair.ImageIndex)),
                Label = pair.Label,
                GroundTruth = pair.Kind == PairKind.Swapped ? GroundTruthKind.Swapped : GroundTruthKind.Clean,
                ImageIndex = pair.ImageIndex,
            };
            example.CaptionTokens.Add(pair.Tokens);
            scored.Examples.Add(example);
        }
        var embeddings = _reference.Embed(pixels, n, tokens);
        scored.ReferenceImageEmbeddings = Protos.V1.Tensor.FromFloat32(embeddings.Image, n, embeddings.Dim);
        scored.ReferenceTextEmbeddings = Protos.V1.Tensor.FromFloat32(embeddings.Text, n, embeddings.Dim);
        scored.ReferenceAlpha = embeddings.Alpha;
        scored.ReferenceBeta = embeddings.Beta;
        return scored;
    }

    /// <summary>Publishes (confirmed) under a producer span of its own, as Scoring would, and returns that span's trace id.</summary>
    public static async Task<ActivityTraceId> PublishAsync(ConfirmedPublisher publisher, QueueTopology topology, ScoredSuperBatch scored)
    {
        ArgumentNullException.ThrowIfNull(publisher);
        ArgumentNullException.ThrowIfNull(topology);
        ArgumentNullException.ThrowIfNull(scored);
        using var activity = Source.StartActivity("scoring.publish", ActivityKind.Producer, default(ActivityContext));
        await publisher.PublishAsync(OutgoingMessage.ToQueue(topology.Scored, "scored/" + scored.Id, scored.ToByteArray()) with { Type = ScoredSuperBatch.Descriptor.FullName }, CancellationToken.None);
        return activity?.TraceId ?? default;
    }

    public void Dispose() => _reference.Dispose();
}

/// <summary>Listens to every activity source so spans exist without an OpenTelemetry exporter.</summary>
public sealed class SpanRecorder : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly List<Activity> _stopped = [];

    public SpanRecorder()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name.StartsWith("JestMesh", StringComparison.Ordinal),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                lock (_stopped)
                {
                    _stopped.Add(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public IReadOnlyList<Activity> Stopped
    {
        get
        {
            lock (_stopped)
            {
                return [.. _stopped];
            }
        }
    }

    public void Dispose() => _listener.Dispose();
}
