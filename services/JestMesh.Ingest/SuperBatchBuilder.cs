using Google.Protobuf;
using JestMesh.Data;
using JestMesh.Protos.V1;

namespace JestMesh.Ingest;

/// <summary>Turns slices of the noisy pool into SuperBatch messages, in a reproducible order.</summary>
public static class SuperBatchBuilder
{
    /// <summary>Stable id of a job's super-batch (also its AMQP message id).</summary>
    public static string SuperBatchId(string job, long sequence) => $"{job}/{sequence}";

    /// <summary>Pool positions of every super-batch to publish, in order: epoch 0 in pool order, later epochs shuffled.</summary>
    public static IEnumerable<int[]> Plan(int poolSize, IngestOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var n = options.SuperBatchSize;
        if (poolSize < n)
        {
            throw new ArgumentException($"Ingest:SuperBatchSize {n} is larger than the pool ({poolSize} examples).", nameof(options));
        }
        var produced = 0;
        for (var epoch = 0; epoch < options.Epochs; epoch++)
        {
            var order = Enumerable.Range(0, poolSize).ToArray();
            if (epoch > 0)
            {
                new Random(HashCode.Combine(options.DataSeed, epoch)).Shuffle(order);
            }
            for (var start = 0; start + n <= poolSize; start += n)
            {
                if (options.MaxSuperBatches > 0 && produced == options.MaxSuperBatches)
                {
                    yield break;
                }
                yield return order[start..(start + n)];
                produced++;
            }
        }
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
