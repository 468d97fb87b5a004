namespace JestMesh.Curation.Tests;

/// <summary>Random test instances and the scores they imply, computed directly in double precision.</summary>
internal static class Instances
{
    public static ContrastiveEmbeddings Embeddings(Random random, int n, int dim, float alpha, float beta, float align = 0.5f)
    {
        var img = new float[n * dim];
        var txt = new float[n * dim];
        for (int i = 0; i < img.Length; i++)
        {
            img[i] = Normal(random);
            txt[i] = (align * img[i]) + ((1 - align) * Normal(random));
        }

        Normalise(img, n, dim);
        Normalise(txt, n, dim);
        return new ContrastiveEmbeddings(img, txt, n, dim, alpha, beta);
    }

    public static float Normal(Random random)
    {
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }

    public static void Normalise(float[] m, int n, int dim)
    {
        for (int i = 0; i < n; i++)
        {
            double norm = 0;
            for (int t = 0; t < dim; t++)
            {
                norm += (double)m[(i * dim) + t] * m[(i * dim) + t];
            }

            for (int t = 0; t < dim; t++)
            {
                m[(i * dim) + t] = (float)(m[(i * dim) + t] / Math.Sqrt(norm));
            }
        }
    }

    public static double Dot(ContrastiveEmbeddings e, int imageRow, int textRow)
    {
        var img = e.Image.Span;
        var txt = e.Text.Span;
        double s = 0;
        for (int t = 0; t < e.Dim; t++)
        {
            s += (double)img[(imageRow * e.Dim) + t] * txt[(textRow * e.Dim) + t];
        }

        return s;
    }

    public static double Softplus(double x) => Math.Max(x, 0) + Math.Log(1 + Math.Exp(-Math.Abs(x)));

    /// <summary>L_ij = −log σ(y_ij·u_ij), written out per pair in double.</summary>
    public static double SigmoidLoss(ContrastiveEmbeddings e, int i, int j)
    {
        double u = (e.Alpha * Dot(e, i, j)) + e.Beta;
        double y = i == j ? 1 : -1;
        return -Math.Log(1 / (1 + Math.Exp(-y * u)));
    }

    public static double[,] SigmoidMatrix(SelectionPolicy policy, ContrastiveEmbeddings? learner, ContrastiveEmbeddings? reference, int n)
    {
        var s = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                s[i, j] = policy switch
                {
                    SelectionPolicy.Learnability => SigmoidLoss(learner!, i, j) - SigmoidLoss(reference!, i, j),
                    SelectionPolicy.HardLearner => SigmoidLoss(learner!, i, j),
                    SelectionPolicy.EasyReference => -SigmoidLoss(reference!, i, j),
                    _ => throw new ArgumentOutOfRangeException(nameof(policy)),
                };
            }
        }

        return s;
    }

    public static double SubsetScore(double[,] s, IEnumerable<int> subset)
    {
        var list = subset.ToList();
        double total = 0;
        foreach (int i in list)
        {
            foreach (int j in list)
            {
                total += s[i, j];
            }
        }

        return total;
    }

    public static float[] Flatten(double[,] s)
    {
        int n = s.GetLength(0);
        var flat = new float[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                flat[(i * n) + j] = (float)s[i, j];
            }
        }

        return flat;
    }

    /// <summary>A random matrix rounded to float, so the dense source sees exactly these values.</summary>
    public static double[,] RandomMatrix(Random random, int n, double scale)
    {
        var s = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                s[i, j] = (float)(scale * Normal(random));
            }
        }

        return s;
    }
}
