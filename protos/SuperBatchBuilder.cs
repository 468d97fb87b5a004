using Google.Protobuf;
using JestMesh.Data;

namespace JestMesh.Protos.V1;

/// <summary>
/// Turns slices of the noisy pool into SuperBatch messages: the one conversion the Ingest service
/// publishes with and benchmarks and tests build wire messages with. Which slices, in which order,
/// is the caller's plan (Ingest: <see cref="SuperBatchPlan"/> over its settings).
/// </summary>
public static class SuperBatchBuilder
{
    /// <summary>Stable id of a job's super-batch (also its AMQP message id).</summary>
    public static string SuperBatchId(string job, long sequence) => $"{job}/{sequence}";

    /// <summary>Super-batch <paramref name="sequence"/> of <paramref name="job"/>: the pool examples at <paramref name="poolPositions"/>, in that order.</summary>
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
