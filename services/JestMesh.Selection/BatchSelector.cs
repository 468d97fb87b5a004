using JestMesh.Curation;
using JestMesh.Learning;
using JestMesh.Protos.V1;

namespace JestMesh.Selection;

/// <summary>
/// The proto adapter over <see cref="CurationStep"/>: one selection as a pure function of the
/// session's settings, the scored super-batch, the learner's scores and the batch's sequence. The
/// in-process loop calls CurationStep with the same inputs and gets the same batch.
/// </summary>
public static class BatchSelector
{
    /// <summary>The curation core's settings of a (validated) session.</summary>
    /// <exception cref="InvalidCurationInputException">The policy or loss is not one this version knows.</exception>
    public static CurationSettings ToCurationSettings(SessionOpen settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (!settings.Policy.TryToSelectionPolicy(out var policy))
        {
            throw new InvalidCurationInputException($"policy {settings.Policy} is not a selection policy.");
        }
        return new CurationSettings
        {
            Policy = policy,
            FilterRatio = settings.FilterRatio,
            Chunks = settings.Chunks,
            Gain = settings.Gain,
            Greedy = settings.Greedy,
            Seed = settings.Seed,
            Loss = settings.EffectiveLoss switch
            {
                LossKind.Sigmoid => ScoreLoss.Sigmoid,
                LossKind.PerExample => ScoreLoss.PerExample,
                LossKind.Softmax => ScoreLoss.Softmax,
                _ => throw new InvalidCurationInputException($"loss {settings.Loss} is not a loss kind."),
            },
        };
    }

    /// <summary>
    /// Selects batch <paramref name="sequence"/> of session <paramref name="sessionId"/> from
    /// <paramref name="scored"/>.
    /// </summary>
    /// <exception cref="InvalidCurationInputException">The learner's scores are missing, malformed, non-finite or not normalised (named "scores.…").</exception>
    /// <exception cref="CurationPreconditionException">The super-batch cannot be curated with the session's settings.</exception>
    public static CuratedBatch Select(SessionOpen settings, ScoredSuperBatch scored, LearnerScores? scores, string sessionId, long sequence)
    {
        ArgumentNullException.ThrowIfNull(scored);
        var curation = ToCurationSettings(settings);
        var n = scored.Examples.Count;
        curation.CheckFits(n, $"super-batch {scored.Id}");
        ContrastiveEmbeddings? reference = null;
        InfoNceLosses? referenceInfoNce = null;
        LearnerView? learner = null;
        try
        {
            if (curation.Policy != SelectionPolicy.Uniform && curation.Loss is ScoreLoss.Sigmoid or ScoreLoss.Softmax)
            {
                var (refImage, refText, dim) = scored.ValidatedEmbeddings();
                reference = new ContrastiveEmbeddings(refImage, refText, n, dim, scored.ReferenceAlpha, scored.ReferenceBeta);
                if (curation.Loss == ScoreLoss.Softmax && curation.NeedsReference)
                {
                    // Scoring's (Scoring:ReferenceInfoNce) when present; absent, CurationStep computes the same values.
                    referenceInfoNce = scored.ValidatedReferenceInfoNce();
                }
                if (curation.NeedsLearner)
                {
                    var (image, text) = Require(scores).DecodeEmbeddings(n, dim);
                    learner = new LearnerView(new ContrastiveEmbeddings(image, text, n, dim, scores!.Alpha, scores.Beta));
                }
            }
            else if (curation.Policy != SelectionPolicy.Uniform && curation.NeedsLearner)
            {
                learner = new LearnerView(null, Require(scores).DecodeLosses(n));
            }
        }
        catch (InvalidDataException ex)
        {
            throw RpcErrors.Invalid(ex);
        }
        var outcome = CurationStep.Select(curation, n, reference, learner, sequence, "scores", referenceInfoNce);

        var batch = new CuratedBatch { SessionId = sessionId, Sequence = sequence, SuperBatchId = scored.Id };
        foreach (var index in outcome.Selected)
        {
            batch.Examples.Add(scored.Examples[index]);
        }
        foreach (var index in outcome.Filtered())
        {
            batch.FilteredIds.Add(scored.Examples[index].Id);
        }
        var stats = outcome.Stats;
        batch.Diagnostics = new SelectionDiagnostics
        {
            MeanScoreSelected = stats.MeanScoreSelected,
            MeanScoreAll = stats.MeanScoreAll,
            SubsetScore = stats.SubsetScore,
            SelectionMs = stats.SelectionMs,
        };
        batch.Diagnostics.ChunkEntropy.Add(stats.ChunkEntropy);
        return batch;
    }

    private static LearnerScores Require(LearnerScores? scores) =>
        scores ?? throw new InvalidCurationInputException("scores are missing; the session's policy needs the learner's scores.");
}
