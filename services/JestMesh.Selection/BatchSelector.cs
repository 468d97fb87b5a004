using Grpc.Core;
using JestMesh.Curation;
using JestMesh.Protos.V1;

namespace JestMesh.Selection;

/// <summary>
/// One selection, as a pure function of the session settings, the scored super-batch, the learner's
/// scores and the batch's sequence: the same inputs give the same batch (an in-process loop that
/// calls this with the same seed reproduces a session's batches).
/// </summary>
public static class BatchSelector
{
    /// <summary>b = round((1 − f)·N), at least 1.</summary>
    public static int BatchSize(int superBatchSize, double filterRatio) =>
        Math.Clamp((int)Math.Round((1 - filterRatio) * superBatchSize, MidpointRounding.AwayFromZero), 1, Math.Max(1, superBatchSize));

    public static SelectionPolicy ToPolicy(Policy policy) => policy switch
    {
        Policy.Learnability => SelectionPolicy.Learnability,
        Policy.HardLearner => SelectionPolicy.HardLearner,
        Policy.EasyReference => SelectionPolicy.EasyReference,
        Policy.Uniform => SelectionPolicy.Uniform,
        _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, "no selection policy for it."),
    };

    /// <summary>True for policies that need the learner's scores.</summary>
    public static bool NeedsLearner(Policy policy) => policy is Policy.Learnability or Policy.HardLearner;

    /// <summary>
    /// Selects batch <paramref name="sequence"/> of session <paramref name="sessionId"/> from
    /// <paramref name="scored"/>. Bad learner scores throw INVALID_ARGUMENT naming the field; a
    /// super-batch that does not fit the session's settings throws FAILED_PRECONDITION.
    /// </summary>
    public static CuratedBatch Select(SessionOpen settings, ScoredSuperBatch scored, LearnerScores? scores, string sessionId, long sequence)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(scored);
        var n = scored.Examples.Count;
        var b = BatchSize(n, settings.FilterRatio);
        if (b % settings.Chunks != 0)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"super-batch {scored.Id} has N = {n}: filter_ratio {settings.FilterRatio} gives b = {b}, which chunks = {settings.Chunks} does not divide."));
        }
        var policy = ToPolicy(settings.Policy);
        IScoreSource source;
        if (policy == SelectionPolicy.Uniform)
        {
            source = ScoreSources.Uniform(n);
        }
        else if (settings.Loss == LossKind.PerExample)
        {
            source = ScoreSources.PerExampleLoss(policy, LearnerLosses(scores!, n), null);
        }
        else
        {
            var (refImage, refText, dim) = scored.ValidatedEmbeddings();
            var reference = new ContrastiveEmbeddings(refImage, refText, n, dim, scored.ReferenceAlpha, scored.ReferenceBeta);
            var learner = NeedsLearner(settings.Policy) ? LearnerEmbeddings(scores!, n, dim) : null;
            source = ScoreSources.SigmoidContrastive(policy, learner, reference);
        }
        var result = JointSampler.Select(source, new SamplerOptions { BatchSize = b, Chunks = settings.Chunks, Gain = settings.Gain, Greedy = settings.Greedy },
            new Random(SamplerSeeds.ForBatch(settings.Seed, sequence)));

        var batch = new CuratedBatch { SessionId = sessionId, Sequence = sequence, SuperBatchId = scored.Id };
        var selected = new bool[n];
        foreach (var index in result.Indices)
        {
            selected[index] = true;
            batch.Examples.Add(scored.Examples[index]);
        }
        for (var i = 0; i < n; i++)
        {
            if (!selected[i])
            {
                batch.FilteredIds.Add(scored.Examples[i].Id);
            }
        }
        batch.Diagnostics = Diagnostics(source, result, b / settings.Chunks);
        return batch;
    }

    private static SelectionDiagnostics Diagnostics(IScoreSource source, SelectionResult result, int chunkSize)
    {
        var diagnostics = new SelectionDiagnostics { SelectionMs = result.Elapsed.TotalMilliseconds };
        diagnostics.ChunkEntropy.Add(result.ChunkEntropy);
        if (source.Policy != SelectionPolicy.Uniform)
        {
            // S_ii: the conditional score of every candidate given an empty selection.
            var diagonal = new double[source.Count];
            source.Start(chunkSize).Initialize(diagonal);
            double selected = 0;
            foreach (var index in result.Indices)
            {
                selected += diagonal[index];
            }
            diagnostics.MeanScoreSelected = selected / result.Indices.Length;
            diagnostics.MeanScoreAll = diagonal.Average();
            diagnostics.SubsetScore = result.Score;
        }
        return diagnostics;
    }

    private static ContrastiveEmbeddings LearnerEmbeddings(LearnerScores scores, int n, int dim)
    {
        var image = Decode(scores.ImageEmbeddings, "scores.image_embeddings", n, dim);
        var text = Decode(scores.TextEmbeddings, "scores.text_embeddings", n, dim);
        if (!float.IsFinite(scores.Alpha) || !float.IsFinite(scores.Beta))
        {
            throw Invalid($"scores.alpha/beta = {scores.Alpha}/{scores.Beta} must be finite.");
        }
        return new ContrastiveEmbeddings(image, text, n, dim, scores.Alpha, scores.Beta);
    }

    private static float[] LearnerLosses(LearnerScores scores, int n) => Decode(scores.PerExampleLosses, "scores.per_example_losses", n);

    private static float[] Decode(Protos.V1.Tensor? tensor, string field, params long[] shape)
    {
        if (tensor is null)
        {
            throw Invalid($"{field} is missing; the session's policy needs it.");
        }
        float[] values;
        try
        {
            values = tensor.ToFloat32(field, shape);
        }
        catch (InvalidDataException ex)
        {
            throw Invalid(ex.Message);
        }
        if (!Protos.V1.Tensor.AllFinite(values))
        {
            throw Invalid($"{field} contains NaN or infinity.");
        }
        return values;
    }

    internal static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
