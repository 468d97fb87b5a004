namespace JestMesh.Curation;

/// <summary>How many examples to select and how the joint sampler draws them.</summary>
public sealed record SamplerOptions
{
    /// <summary>b: examples selected from the super-batch.</summary>
    public required int BatchSize { get; init; }

    /// <summary>Chunks drawn in sequence; 1 = independent selection. Must divide <see cref="BatchSize"/>.</summary>
    public int Chunks { get; init; } = 16;

    /// <summary>The paper's softmax_score_gain: the draw is ∝ exp(gain·Δ).</summary>
    public double Gain { get; init; } = 100;

    /// <summary>No Gumbel noise: deterministic top-k of the conditional scores in every chunk.</summary>
    public bool Greedy { get; init; }
}
