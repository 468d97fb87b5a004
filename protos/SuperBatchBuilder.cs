using Google.Protobuf;
using JestMesh.Data;
using JestMesh.Data.WebDataset;

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

    /// <summary>Super-batch <paramref name="sequence"/> of <paramref name="job"/> from decoded WebDataset samples, in that order.</summary>
    public static SuperBatch Build(string job, long sequence, IReadOnlyList<WdsPair> pairs, string dataFingerprint)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var batch = new SuperBatch
        {
            Id = SuperBatchId(job, sequence),
            Job = job,
            Sequence = sequence,
            DataFingerprint = dataFingerprint,
            CreatedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        };
        foreach (var pair in pairs)
        {
            batch.Examples.Add(ToExample(pair));
        }
        return batch;
    }

    /// <summary>
    /// A WebDataset sample on the wire: the decoded grey pixels the built-in models take in `image`,
    /// the stored bytes and format, the caption text and ids, the source key (the id derives from it).
    /// </summary>
    public static Example ToExample(WdsPair pair)
    {
        ArgumentNullException.ThrowIfNull(pair);
        var sample = pair.Sample;
        var example = new Example
        {
            Id = pair.Id,
            Image = ByteString.CopyFrom(pair.Pixels),
            GroundTruth = pair.Kind switch
            {
                PairKind.Clean => GroundTruthKind.Clean,
                PairKind.Swapped => GroundTruthKind.Swapped,
                PairKind.Duplicate => GroundTruthKind.Duplicate,
                _ => GroundTruthKind.Unspecified,
            },
            ImageHeight = ImageSet.Side,
            ImageWidth = ImageSet.Side,
            EncodedImage = ByteString.CopyFrom(sample.Image),
            ImageFormat = sample.Encoding == ImageEncoding.Png ? ImageFormat.Png : ImageFormat.Jpeg,
            Caption = sample.Caption,
            Source = new SourceKey { Shard = sample.Shard, Key = sample.Key },
        };
        if (pair.Label >= 0)
        {
            example.Label = pair.Label;
        }
        example.CaptionTokens.AddRange(Trim(pair.Tokens));
        return example;
    }

    private static ArraySegment<int> Trim(int[] tokens)
    {
        // Trailing pad tokens carry nothing: the embedding bag ignores them and Scoring pads again.
        var length = tokens.Length;
        while (length > 0 && tokens[length - 1] == Captions.PadToken)
        {
            length--;
        }
        return new ArraySegment<int>(tokens, 0, length);
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
        example.CaptionTokens.AddRange(Trim(pair.Tokens));
        return example;
    }
}
