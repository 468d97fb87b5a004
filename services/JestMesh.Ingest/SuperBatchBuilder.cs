using Google.Protobuf;
using JestMesh.Data;
using JestMesh.Protos.V1;

namespace JestMesh.Ingest;

/// <summary>Turns slices of the noisy pool into SuperBatch messages, in a reproducible order.</summary>
public static class SuperBatchBuilder
{
    /// <summary>Stable id of a job's super-batch (also its AMQP message id).</summary>
    public static string SuperBatchId(string job, long sequence) => $"{job}/{sequence}";

    /// <summary>
    /// Pool positions of every super-batch to publish, in order: <see cref="SuperBatchPlan"/> with
    /// Ingest:OrderSeed (the in-process loop streams the same order for the same seed), over
    /// Ingest:Epochs, stopping after Ingest:MaxSuperBatches when that is set.
    /// </summary>
    public static IEnumerable<int[]> Plan(int poolSize, IngestOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var n = options.SuperBatchSize;
        if (poolSize < n)
        {
            throw new ArgumentException($"Ingest:SuperBatchSize {n} is larger than the pool ({poolSize} examples).", nameof(options));
        }
        var plan = SuperBatchPlan.Positions(poolSize, n, options.OrderSeed, options.Epochs);
        return options.MaxSuperBatches > 0 ? plan.Take(options.MaxSuperBatches) : plan;
    }

    public static SuperBatch Build(PairDataset data, string job, long sequence, ReadOnlySpan<int> poolPositions)
    {
        ArgumentNullException.ThrowIfNull(data);
        var batch = new SuperBatch
        {
            Id = SuperBatchId(job, sequence),
            Job = job,
            Sequence = sequence,
            DataFingerprint = data.Fingerprint,
            CreatedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        };
        foreach (var position in poolPositions)
        {
            batch.Examples.Add(ToExample(data, data.Pool[position]));
        }
        return batch;
    }

    public static Example ToExample(PairDataset data, PairExample pair)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(pair);
        var example = new Example
        {
            Id = pair.Id,
            Image = ByteString.CopyFrom(data.Train.Image(pair.ImageIndex)),
            Label = pair.Label,
            GroundTruth = pair.Kind switch
            {
                PairKind.Clean => GroundTruthKind.Clean,
                PairKind.Swapped => GroundTruthKind.Swapped,
                PairKind.Duplicate => GroundTruthKind.Duplicate,
                _ => GroundTruthKind.Unspecified,
            },
            ImageHeight = ImageSet.Side,
            ImageWidth = ImageSet.Side,
            ImageIndex = pair.ImageIndex,
        };
        // Trailing pad tokens carry nothing: the embedding bag ignores them and Scoring pads again.
        var length = pair.Tokens.Length;
        while (length > 0 && pair.Tokens[length - 1] == Captions.PadToken)
        {
            length--;
        }
        example.CaptionTokens.AddRange(new ArraySegment<int>(pair.Tokens, 0, length));
        return example;
    }
}
