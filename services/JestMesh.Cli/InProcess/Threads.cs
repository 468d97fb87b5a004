namespace JestMesh.Cli.InProcess;

/// <summary>Torch intra-op thread count: pinned for fair benchmarks on shared cores.</summary>
internal static class Threads
{
    public static void Apply(int threads)
    {
        if (threads < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "--threads must be ≥ 0 (0 = libtorch default).");
        }

        if (threads > 0)
        {
            TorchSharp.torch.set_num_threads(threads);
        }
    }
}
