using JestMesh.Curation;

namespace JestMesh.Learning;

/// <summary>Diagnostics of one selection (JEST.md): what the batch scored, how peaked each chunk's draw was, how long it took.</summary>
public sealed record SelectionStats(double MeanScoreSelected, double MeanScoreAll, double SubsetScore, double[] ChunkEntropy, double SelectionMs);

/// <summary>The b candidates selected from a super-batch (indices into it, in the order drawn) and the selection's diagnostics.</summary>
public sealed record CurationOutcome(int[] Selected, int SuperBatchSize, SelectionStats Stats)
{
    /// <summary>Indices of the candidates not selected, ascending (the accounting's "filtered").</summary>
    public int[] Filtered()
    {
        var selected = new bool[SuperBatchSize];
        foreach (var index in Selected)
        {
            selected[index] = true;
        }
        var filtered = new int[SuperBatchSize - Selected.Length];
        var k = 0;
        for (var i = 0; i < SuperBatchSize; i++)
        {
            if (!selected[i])
            {
                filtered[k++] = i;
            }
        }
        return filtered;
    }
}

/// <summary>What the learner says about one super-batch: embeddings for the sigmoid loss, or per-example losses.</summary>
public sealed record LearnerView(ContrastiveEmbeddings? Embeddings, float[]? PerExampleLosses = null);

/// <summary>
/// One curation step from plain arrays: the session's settings, the reference's and the learner's
/// views of a super-batch and the batch's position in the session give the selected candidates.
/// A pure function: the Selection service and the in-process loop call it with the same inputs and
/// get the same batch, because the sampler's noise depends only on (seed, sequence).
/// </summary>
public static class CurationStep
{
    /// <summary>How far a row's L2 norm may be from 1 before the scores are refused (float32 rounding is ~1e-7).</summary>
    public const double NormTolerance = 1e-3;

    /// <summary>
    /// Selects batch <paramref name="sequence"/> (1-based) from a super-batch of <paramref name="superBatchSize"/>.
    /// <paramref name="learnerField"/> names the learner's input in error messages. <paramref name="referenceInfoNce"/>:
    /// with the softmax loss, the reference's InfoNCE losses over the super-batch when Scoring attached them
    /// (<see cref="InfoNceLosses.Compute"/> of <paramref name="reference"/>); null computes them, with the same result.
    /// Ignored by the other losses.
    /// </summary>
    /// <exception cref="InvalidCurationInputException">Settings out of range, or learner scores missing, of the wrong size, non-finite, not normalised, or (softmax) with an α the source cannot take.</exception>
    /// <exception cref="CurationPreconditionException">The super-batch cannot be curated with these settings.</exception>
    public static CurationOutcome Select(CurationSettings settings, int superBatchSize, ContrastiveEmbeddings? reference, LearnerView? learner, long sequence, string learnerField = "learner", InfoNceLosses? referenceInfoNce = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        if (superBatchSize < 1)
        {
            throw new CurationPreconditionException($"the super-batch is empty (N = {superBatchSize}).");
        }
        settings.CheckFits(superBatchSize);
        if (settings.NeedsReference && reference is null)
        {
            throw new ArgumentException($"policy {Policies.Name(settings.Policy)} needs the reference's embeddings.", nameof(reference));
        }
        if (reference is not null && reference.Count != superBatchSize)
        {
            throw new ArgumentException($"the reference has {reference.Count} rows for a super-batch of {superBatchSize}.", nameof(reference));
        }
        if (referenceInfoNce is not null && reference is not null && referenceInfoNce.Count != superBatchSize)
        {
            throw new ArgumentException($"the reference's InfoNCE losses have {referenceInfoNce.Count} values for a super-batch of {superBatchSize}.", nameof(referenceInfoNce));
        }
        // The sampler's first-chunk scores are the diagnostics' S_ii: kept, not computed again (for the softmax source a second O(N²·d) pass).
        var source = new FirstChunkRecorder(Source(settings, superBatchSize, reference, learner, learnerField, referenceInfoNce));
        var sampler = settings.SamplerFor(superBatchSize);
        var result = JointSampler.Select(source, sampler, new Random(SamplerSeeds.ForBatch(settings.Seed, sequence)));
        return new CurationOutcome(result.Indices, superBatchSize, Stats(source, result, sampler.BatchSize / sampler.Chunks));
    }

    /// <summary>
    /// Checks that the softmax source can take a model's α: |α|·max‖img‖·max‖txt‖ (the Cauchy–Schwarz bound of every
    /// u = α⟨img, txt⟩, which the source computes in float32) must be a finite float32.
    /// </summary>
    /// <exception cref="InvalidCurationInputException">It is not, naming "{field}.alpha".</exception>
    public static void RequireSoftmaxAlpha(ContrastiveEmbeddings model, string field)
    {
        ArgumentNullException.ThrowIfNull(model);
        var bound = ScoreSources.SoftmaxLogitBound(model);
        if (!(bound <= float.MaxValue))
        {
            throw new InvalidCurationInputException(
                $"{field}.alpha {model.Alpha} is too large for the softmax loss: |α|·max‖img‖·max‖txt‖ = {bound:G4} overflows float32 (≤ {float.MaxValue:G4}).");
        }
    }

    /// <summary>Checks that every row of a row-major [rows, dim] matrix has unit L2 norm (the contract of every embedding JestMesh takes).</summary>
    /// <exception cref="InvalidCurationInputException">The first row whose norm is off, named with its index and norm.</exception>
    public static void RequireNormalisedRows(ReadOnlySpan<float> matrix, int rows, int dim, string field)
    {
        for (var r = 0; r < rows; r++)
        {
            var norm = Math.Sqrt(System.Numerics.Tensors.TensorPrimitives.SumOfSquares(matrix.Slice(r * dim, dim)));
            if (!(Math.Abs(norm - 1) <= NormTolerance))
            {
                throw new InvalidCurationInputException($"{field} row {r} has L2 norm {norm:G4}; embeddings must be L2-normalised (|norm − 1| ≤ {NormTolerance}).");
            }
        }
    }

    private static IScoreSource Source(CurationSettings settings, int n, ContrastiveEmbeddings? reference, LearnerView? learner, string learnerField, InfoNceLosses? referenceInfoNce)
    {
        if (settings.Policy == SelectionPolicy.Uniform)
        {
            return ScoreSources.Uniform(n);
        }
        if (settings.Loss == ScoreLoss.PerExample)
        {
            var losses = learner?.PerExampleLosses ?? throw new InvalidCurationInputException($"{learnerField}.per_example_losses is missing; the session's policy needs it.");
            if (losses.Length != n)
            {
                throw new InvalidCurationInputException($"{learnerField}.per_example_losses has {losses.Length} values for {n} candidates.");
            }
            if (!Finite.All(losses))
            {
                throw new InvalidCurationInputException($"{learnerField}.per_example_losses contains NaN or infinity.");
            }
            return ScoreSources.PerExampleLoss(settings.Policy, losses, null);
        }
        ContrastiveEmbeddings? view = null;
        if (settings.NeedsLearner)
        {
            view = learner?.Embeddings ?? throw new InvalidCurationInputException($"{learnerField} embeddings are missing; the session's policy needs them.");
            if (view.Count != n)
            {
                throw new InvalidCurationInputException($"{learnerField} embeddings have {view.Count} rows for {n} candidates.");
            }
            if (reference is not null && view.Dim != reference.Dim)
            {
                throw new InvalidCurationInputException($"{learnerField} embeddings have dimension {view.Dim}, the reference's have {reference.Dim}.");
            }
            RequireNormalisedRows(view.Image.Span, n, view.Dim, $"{learnerField}.image_embeddings");
            RequireNormalisedRows(view.Text.Span, n, view.Dim, $"{learnerField}.text_embeddings");
        }
        if (settings.Loss == ScoreLoss.Softmax)
        {
            if (view is not null)
            {
                RequireSoftmaxAlpha(view, learnerField);
            }
            if (reference is not null)
            {
                // The reference comes from a scored super-batch whose checks (ValidatedEmbeddings) include this bound.
                RequireSoftmaxAlpha(reference, "reference");
            }
            return ScoreSources.SoftmaxContrastive(settings.Policy, view, reference, referenceInfoNce);
        }
        return ScoreSources.SigmoidContrastive(settings.Policy, view, reference);
    }

    /// <summary>Passes a source through, keeping the scores of its first <see cref="IConditionalScores.Initialize"/> (Δ(c|∅), the diagnostics' S_ii).</summary>
    private sealed class FirstChunkRecorder(IScoreSource inner) : IScoreSource
    {
        public double[]? FirstChunk { get; private set; }

        public int Count => inner.Count;

        public SelectionPolicy Policy => inner.Policy;

        public bool IsPairwiseAdditive => inner.IsPairwiseAdditive;

        public IConditionalScores Start(int chunkSize) => new Recording(this, inner.Start(chunkSize));

        private sealed class Recording(FirstChunkRecorder owner, IConditionalScores state) : IConditionalScores
        {
            public double SelectedScore => state.SelectedScore;

            public void Initialize(Span<double> scores)
            {
                state.Initialize(scores);
                owner.FirstChunk ??= scores.ToArray();
            }

            public void Add(ReadOnlySpan<int> added, ReadOnlySpan<int> candidates, Span<double> scores) => state.Add(added, candidates, scores);
        }
    }

    private static SelectionStats Stats(FirstChunkRecorder source, SelectionResult result, int chunkSize)
    {
        if (source.Policy == SelectionPolicy.Uniform)
        {
            return new SelectionStats(0, 0, 0, result.ChunkEntropy, result.Elapsed.TotalMilliseconds);
        }
        // S_ii: the conditional score of every candidate given an empty selection (the sampler's first chunk computed it).
        var diagonal = source.FirstChunk;
        if (diagonal is null)
        {
            diagonal = new double[source.Count];
            source.Start(chunkSize).Initialize(diagonal);
        }
        double selected = 0;
        foreach (var index in result.Indices)
        {
            selected += diagonal[index];
        }
        return new SelectionStats(selected / result.Indices.Length, diagonal.Average(), result.Score, result.ChunkEntropy, result.Elapsed.TotalMilliseconds);
    }
}
