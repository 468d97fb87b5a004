using System.ComponentModel.DataAnnotations;

namespace JestMesh.Scoring;

/// <summary>Reference model, device and cache of the Scoring service (configuration section "Scoring").</summary>
public sealed class ScoringOptions
{
    public const string SectionName = "Scoring";

    /// <summary>Directory of the reference checkpoint (model.bin + metadata.json, SHA-256 verified on load).</summary>
    [Required]
    public string ReferenceDirectory { get; set; } = "";

    /// <summary>auto (CUDA when TorchSharp finds a GPU, else CPU), cpu, cuda or cuda:N.</summary>
    [Required]
    [RegularExpression("^(auto|cpu|cuda(:[0-9]+)?)$")]
    public string Device { get; set; } = "auto";

    /// <summary>Examples per forward pass of the reference model.</summary>
    [Range(1, 65536)]
    public int BatchSize { get; set; } = 512;

    /// <summary>Examples whose embeddings are kept in memory (0 disables the cache).</summary>
    [Range(0, 50_000_000)]
    public int CacheCapacity { get; set; } = 131_072;

    /// <summary>File the cache is loaded from at start and saved to at stop (empty: not persisted).</summary>
    public string CachePath { get; set; } = "";

    /// <summary>
    /// How often new cache entries are also saved while running, so a crash or a killed pod loses at
    /// most this much reference work (00:00:00: only at a graceful stop).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "24:00:00")]
    public TimeSpan CacheSaveInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Output directory of `jestmesh score` for this reference: its embeddings are loaded into the cache
    /// at start, keyed by source key, so the model runs only for examples it lacks (empty: none). Embeddings
    /// of another reference (summary.json's reference_sha256) stop the service at start.
    /// </summary>
    public string PrecomputedDirectory { get; set; } = "";

    /// <summary>
    /// Also attach the reference's InfoNCE losses over each super-batch (ScoredSuperBatch.reference_info_nce): the
    /// frozen reference's half of the softmax score source's first chunk, computed here, ahead of the learner, instead
    /// of by Selection between the learner's scores and its batch (O(N²·d) per super-batch on the CPU, ~7–8 ms at
    /// N = 2,048, d = 64; 16·N bytes more per message). The same work moved, not saved: each super-batch is selected
    /// by one session. Turn it on when the jobs' sessions use LOSS_KIND_SOFTMAX with learnability or easy-reference;
    /// off (the default) otherwise, since sigmoid and per-example sessions never read the field and Selection
    /// computes the same values itself when it is absent.
    /// </summary>
    public bool ReferenceInfoNce { get; set; }

    /// <summary>Refuse super-batches whose data fingerprint differs (empty: accept any).</summary>
    public string ExpectedDataFingerprint { get; set; } = "";
}
