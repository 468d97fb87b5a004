using JestMesh.Curation;

namespace JestMesh.Learning;

/// <summary>Which loss's terms make up S.</summary>
public enum ScoreLoss
{
    /// <summary>Sigmoid contrastive (SigLIP): pairwise N×N terms from embeddings and α, β.</summary>
    Sigmoid,

    /// <summary>Per-example losses: S is diagonal.</summary>
    PerExample,

    /// <summary>Softmax contrastive (InfoNCE): conditional scores from embeddings and α (<see cref="ScoreSources.SoftmaxContrastive"/>).</summary>
    Softmax,
}

/// <summary>The settings of a curation session: one record for the services and the in-process loop.</summary>
public sealed record CurationSettings
{
    public required SelectionPolicy Policy { get; init; }

    /// <summary>f = 1 − b/N, in [0, 1).</summary>
    public double FilterRatio { get; init; } = 0.8;

    /// <summary>Chunks of the joint sampler; 1 = independent selection.</summary>
    public int Chunks { get; init; } = 16;

    /// <summary>Softmax score gain (paper: 100; 1 does best at this project's scale).</summary>
    public double Gain { get; init; } = 1;

    public bool Greedy { get; init; }

    /// <summary>Seed of the sampler's Gumbel noise (per batch through <see cref="SamplerSeeds"/>).</summary>
    public ulong Seed { get; init; }

    public ScoreLoss Loss { get; init; } = ScoreLoss.Sigmoid;

    /// <summary>Whether the policy needs the learner's scores of every candidate.</summary>
    public bool NeedsLearner => Policies.NeedsLearner(Policy);

    /// <summary>Whether the policy needs the reference's scores.</summary>
    public bool NeedsReference => Policies.NeedsReference(Policy);

    /// <summary>
    /// Checks the settings on their own; <paramref name="field"/> prefixes the names in the message
    /// (for example "open" gives "open.chunks").
    /// </summary>
    /// <exception cref="InvalidCurationInputException">A setting out of range, named.</exception>
    public void Validate(string field = "settings")
    {
        if (!Enum.IsDefined(Policy))
        {
            throw new InvalidCurationInputException($"{field}.policy {Policy} is not a selection policy.");
        }
        if (!SuperBatchSizing.IsValidRatio(FilterRatio))
        {
            throw new InvalidCurationInputException($"{field}.filter_ratio {FilterRatio} must be in [0, 1).");
        }
        if (Chunks < 1)
        {
            throw new InvalidCurationInputException($"{field}.chunks {Chunks} must be ≥ 1.");
        }
        if (!double.IsFinite(Gain) || Gain < 0)
        {
            throw new InvalidCurationInputException($"{field}.gain {Gain} must be finite and ≥ 0.");
        }
        if (!Enum.IsDefined(Loss))
        {
            throw new InvalidCurationInputException($"{field}.loss {Loss} is not a loss kind.");
        }
        if (Loss == ScoreLoss.PerExample && NeedsReference)
        {
            throw new InvalidCurationInputException($"{field}.loss PER_EXAMPLE with policy {Policies.Name(Policy)} needs the reference's per-example losses, which scored super-batches do not carry: use the sigmoid loss.");
        }
    }

    /// <summary>b for a super-batch of <paramref name="superBatchSize"/> candidates.</summary>
    public int BatchSizeFor(int superBatchSize) => SuperBatchSizing.BatchSize(superBatchSize, FilterRatio);

    /// <summary>Checks that a super-batch of <paramref name="superBatchSize"/> can be curated with these settings.</summary>
    /// <exception cref="CurationPreconditionException">b is not a multiple of the chunks (or smaller than them).</exception>
    public void CheckFits(int superBatchSize, string what = "the super-batch")
    {
        var b = BatchSizeFor(superBatchSize);
        if (b % Chunks != 0)
        {
            throw new CurationPreconditionException(
                $"{what} has N = {superBatchSize}: filter_ratio {FilterRatio} gives b = {b}, which chunks = {Chunks} does not divide.");
        }
    }

    /// <summary>The sampler's options for a super-batch of <paramref name="superBatchSize"/>.</summary>
    public SamplerOptions SamplerFor(int superBatchSize) =>
        new() { BatchSize = BatchSizeFor(superBatchSize), Chunks = Chunks, Gain = Gain, Greedy = Greedy };
}
