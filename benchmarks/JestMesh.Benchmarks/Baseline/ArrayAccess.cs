using System.Runtime.InteropServices;
using JestMesh.Curation;

namespace JestMesh.Benchmarks.Baseline;

/// <summary>The embeddings' backing arrays through the public ReadOnlyMemory (no copy), as the library reads them internally.</summary>
internal static class ArrayAccess
{
    public static float[] Image(this ContrastiveEmbeddings e) => Array(e.Image);

    public static float[] Text(this ContrastiveEmbeddings e) => Array(e.Text);

    private static float[] Array(ReadOnlyMemory<float> m) =>
        MemoryMarshal.TryGetArray(m, out var segment) && segment.Offset == 0 ? segment.Array! : throw new InvalidOperationException("embeddings are not array-backed");
}
