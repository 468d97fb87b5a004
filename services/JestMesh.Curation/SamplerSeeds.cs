namespace JestMesh.Curation;

/// <summary>
/// Seeds of the sampler's Gumbel noise. Each batch's noise depends only on the run's seed and the
/// batch's position (1-based), so a resumed or replayed session, the Selection service and the
/// in-process loop all draw the same noise for the same batch.
/// </summary>
public static class SamplerSeeds
{
    /// <summary>SplitMix64 of (seed, sequence), folded to a non-negative <see cref="Random"/> seed.</summary>
    public static int ForBatch(ulong seed, long sequence)
    {
        unchecked
        {
            var z = seed + (0x9E3779B97F4A7C15UL * (ulong)sequence);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (int)(z >> 33);
        }
    }
}
