using System.Numerics.Tensors;
using JestMesh.Curation;

namespace JestMesh.Benchmarks;

/// <summary>A literal port of the paper's Alg. 1: full N×N learner and reference loss matrices, and every chunk re-sums the whole score matrix. The baseline, not for use.</summary>
public static class LiteralAlgorithm1
{
    public static int[] JointlySampleBatch(ContrastiveEmbeddings learner, ContrastiveEmbeddings reference, int nChunks, int batchSize, double gain, Random random)
    {
        int n = learner.Count;
        var learnerLoss = SigmoidLossMatrix(learner);
        var refLoss = SigmoidLossMatrix(reference);
        // scores = learner_loss - ref_loss
        var scores = new float[n * n];
        TensorPrimitives.Subtract(learnerLoss, refLoss, scores);
        int nDraws = batchSize / nChunks;
        var logitsIi = new double[n];
        for (int i = 0; i < n; i++)
        {
            logitsIi[i] = scores[(i * n) + i];
        }

        var inds = new List<int>(Choice(n, nDraws, Softmax(logitsIi, gain, new double[n]), random));
        for (int chunk = 1; chunk < nChunks; chunk++)
        {
            var isSampled = new double[n];
            foreach (int i in inds)
            {
                isSampled[i] += 1;
            }

            // logits_ij = sum(scores, axis=1, where=is_sampled); logits_ji = sum(scores, axis=0, where=is_sampled)
            var logitsIj = new double[n];
            var logitsJi = new double[n];
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double s = scores[(i * n) + j];
                    logitsIj[i] += s * isSampled[j];
                    logitsJi[j] += s * isSampled[i];
                }
            }

            var logits = new double[n];
            for (int i = 0; i < n; i++)
            {
                logits[i] = logitsIi[i] + logitsIj[i] + logitsJi[i] - (isSampled[i] * 1e8);
            }

            inds.AddRange(Choice(n, nDraws, Softmax(logits, gain, isSampled), random));
        }

        return [.. inds];
    }

    /// <summary>-log_sigmoid(labels * (α·img@txt.T + β)) with labels = 2·I − 1.</summary>
    private static float[] SigmoidLossMatrix(ContrastiveEmbeddings e)
    {
        int n = e.Count;
        int d = e.Dim;
        var img = e.Image.Span;
        var txt = e.Text.Span;
        var loss = new float[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                float logit = (e.Alpha * TensorPrimitives.Dot(img.Slice(i * d, d), txt.Slice(j * d, d))) + e.Beta;
                float z = (i == j ? 1f : -1f) * logit;
                loss[(i * n) + j] = Math.Max(-z, 0) + MathF.Log(1 + MathF.Exp(-Math.Abs(z)));
            }
        }

        return loss;
    }

    /// <remarks>
    /// One deviation from the paper: at gain 100 most probabilities underflow to exactly 0, and numpy.random.choice
    /// then raises "Fewer non-zero entries in p than size"; unsampled entries get a 1e-300 floor instead.
    /// </remarks>
    private static double[] Softmax(double[] logits, double gain, double[] isSampled)
    {
        double max = double.NegativeInfinity;
        foreach (double l in logits)
        {
            max = Math.Max(max, gain * l);
        }

        var p = new double[logits.Length];
        double z = 0;
        for (int i = 0; i < p.Length; i++)
        {
            p[i] = Math.Exp((gain * logits[i]) - max);
            z += p[i];
        }

        for (int i = 0; i < p.Length; i++)
        {
            p[i] = isSampled[i] > 0 ? 0 : Math.Max(p[i] / z, 1e-300);
        }

        return p;
    }

    /// <summary>np.random.choice(n, size, replace=False, p=p): sequential draws, renormalising over what is left.</summary>
    private static int[] Choice(int n, int size, double[] p, Random random)
    {
        var left = (double[])p.Clone();
        var result = new int[size];
        for (int s = 0; s < size; s++)
        {
            double total = 0;
            foreach (double q in left)
            {
                total += q;
            }

            double u = random.NextDouble() * total;
            int pick = -1;
            for (int i = 0; i < n; i++)
            {
                if (left[i] <= 0)
                {
                    continue;
                }

                pick = i;
                u -= left[i];
                if (u < 0)
                {
                    break;
                }
            }

            result[s] = pick;
            left[pick] = 0;
        }

        return result;
    }
}
