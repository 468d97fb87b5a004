using System.ComponentModel.DataAnnotations;
using JestMesh.Data;

namespace JestMesh.Ingest;

/// <summary>What Ingest publishes (configuration section "Ingest").</summary>
public sealed class IngestOptions
{
    public const string SectionName = "Ingest";

    /// <summary>The job (training run) the super-batches belong to.</summary>
    [Required]
    [RegularExpression("^[A-Za-z0-9_.-]{1,100}$")]
    public string Job { get; set; } = "";

    /// <summary>Examples per super-batch (N). A last partial super-batch is not published.</summary>
    [Range(1, 65536)]
    public int SuperBatchSize { get; set; } = 640;

    /// <summary>Stop after this many super-batches (0 = every full super-batch of every epoch).</summary>
    [Range(0, int.MaxValue)]
    public int MaxSuperBatches { get; set; }

    /// <summary>Passes over the pool; each epoch is a permutation drawn from OrderSeed and the epoch.</summary>
    [Range(1, 10_000)]
    public int Epochs { get; set; } = 1;

    /// <summary>After the broker refused a publish (queue full), resume once at most this many are ready (0 = half the queue limit).</summary>
    [Range(0, int.MaxValue)]
    public int ResumeBelow { get; set; }

    /// <summary>
    /// Per-job backpressure: before each publish, wait while this many of the job's scored
    /// super-batches are already waiting in Selection's job queue (0 = no bound). The input queue's
    /// bound alone would let a job whose trainers are slow or gone fill the broker's disk: Scoring
    /// drains the input queue and Selection's router moves everything on to the job's queue.
    /// 64 super-batches of N = 640 are about 55 MB.
    /// </summary>
    [Range(0, 1_000_000)]
    public int MaxAhead { get; set; } = 64;

    /// <summary>Start publishing when the host starts (the hosted service); false leaves it to a caller of <see cref="IngestRunner"/>.</summary>
    public bool RunOnStart { get; set; } = true;

    /// <summary>
    /// Stop the host once the run is over, exit code 0 when every super-batch was published and 1 when
    /// the run failed (how `./jestmesh ingest` runs the service); false stays up for probes.
    /// </summary>
    public bool ExitWhenDone { get; set; }

    /// <summary>Seed of the order the pool is streamed in (`train --inproc --seed` uses the same order).</summary>
    [Range(0, int.MaxValue)]
    public int OrderSeed { get; set; }

    /// <summary>
    /// A directory of WebDataset .tar shards to publish instead of the built-in pool ("" = the built-in
    /// Fashion-MNIST pool). Streamed in <see cref="JestMesh.Data.WebDataset.ShardOrder"/> of OrderSeed;
    /// samples that cannot be used are logged and counted, never published.
    /// </summary>
    public string WebDatasetDirectory { get; set; } = "";

    [Range(0, int.MaxValue)]
    public int DataSeed { get; set; }

    [Range(0.0, 1.0)]
    public double SwappedShare { get; set; } = 0.7;

    [Range(10, 60_000)]
    public int CuratedSize { get; set; } = 3000;

    [Range(0.0, 1.0)]
    public double DuplicateShare { get; set; }

    [Required]
    public string DataDirectory { get; set; } = FashionMnist.DefaultDirectory;

    public DataOptions ToDataOptions() => new()
    {
        Seed = DataSeed,
        SwappedShare = SwappedShare,
        CuratedSize = CuratedSize,
        DuplicateShare = DuplicateShare,
        Directory = DataDirectory,
    };
}
