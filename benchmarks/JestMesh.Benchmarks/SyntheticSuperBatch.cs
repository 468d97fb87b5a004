using JestMesh.Curation;

namespace JestMesh.Benchmarks;

/// <summary>Deterministic learner and reference embeddings with cluster structure, like a real super-batch.</summary>
public static class SyntheticSuperBatch
{
    public static (ContrastiveEmbeddings Learner, ContrastiveEmbeddings Reference) Create(int n, int dim, int seed)
    {
        var random = new Random(seed);
        const int clusters = 16;
        var centres = new float[clusters * dim];
        for (int i = 0; i < centres.Length; i++)
        {
            centres[i] = Normal(random);
        }

        var li = new float[n * dim];
        var lt = new float[n * dim];
        var ri = new float[n * dim];
        var rt = new float[n * dim];
        for (int i = 0; i < n; i++)
        {
            int c = random.Next(clusters);
            // A third of the pairs have a caption from another cluster (noisy web pairs).
            int ct = random.NextDouble() < 0.33 ? random.Next(clusters) : c;
            for (int t = 0; t < dim; t++)
            {
                float img = centres[(c * dim) + t];
                float txt = centres[(ct * dim) + t];
                ri[(i * dim) + t] = img + (0.3f * Normal(random));
                rt[(i * dim) + t] = txt + (0.3f * Normal(random));
                li[(i * dim) + t] = img + (1.0f * Normal(random));
                lt[(i * dim) + t] = txt + (1.0f * Normal(random));
            }
        }

        foreach (var m in new[] { li, lt, ri, rt })
        {
            Normalise(m, n, dim);
        }

        return (new ContrastiveEmbeddings(li, lt, n, dim, 10f, -10f), new ContrastiveEmbeddings(ri, rt, n, dim, 10f, -10f));
    }

    public static int BatchSize(int n, double filterRatio, int chunks)
    {
        int b = (int)Math.Round(n * (1 - filterRatio) / chunks) * chunks;
        return Math.Max(chunks, b);
    }

    private static void Normalise(float[] m, int n, int dim)
    {
        for (int i = 0; i < n; i++)
        {
            var row = m.AsSpan(i * dim, dim);
            float norm = System.Numerics.Tensors.TensorPrimitives.Norm(row);
            System.Numerics.Tensors.TensorPrimitives.Divide(row, norm, row);
        }
    }

    private static float Normal(Random random)
    {
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}
