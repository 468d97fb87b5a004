namespace JestMesh.Curation;

/// <summary>A selected sub-batch and its diagnostics.</summary>
/// <param name="Indices">b distinct indices into the super-batch, in the order drawn (chunk by chunk, best Gumbel key first).</param>
/// <param name="Score">s(𝔅) = Σ_{i,j∈𝔅} S_ij without gain; for softmax sources the policy-weighted InfoNCE loss of 𝔅 with 𝔅 as its own negatives; NaN for <see cref="SelectionPolicy.Uniform"/>.</param>
/// <param name="ChunkEntropy">Entropy (nats) of each chunk's single-draw distribution softmax(gain·Δ(c|𝒮)) over the remaining candidates.</param>
/// <param name="Elapsed">Score building plus sampling.</param>
public sealed record SelectionResult(int[] Indices, double Score, double[] ChunkEntropy, TimeSpan Elapsed);
