namespace JestMesh.Cli.InProcess;

/// <summary>Spearman's rank correlation (average ranks for ties) and top-k agreement of two score vectors.</summary>
internal static class RankCorrelation
{
    public static double Spearman(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count != b.Count || a.Count < 2)
        {
            throw new ArgumentException($"Spearman needs two vectors of the same length ≥ 2 (got {a.Count} and {b.Count}).");
        }

        var ra = Ranks(a);
        var rb = Ranks(b);
        var ma = ra.Average();
        var mb = rb.Average();
        double cov = 0, va = 0, vb = 0;
        for (var i = 0; i < ra.Length; i++)
        {
            cov += (ra[i] - ma) * (rb[i] - mb);
            va += (ra[i] - ma) * (ra[i] - ma);
            vb += (rb[i] - mb) * (rb[i] - mb);
        }

        return va == 0 || vb == 0 ? double.NaN : cov / Math.Sqrt(va * vb);
    }

    /// <summary>Share of the k highest of <paramref name="exact"/> that are also among the k highest of <paramref name="approx"/>.</summary>
    public static double TopKOverlap(IReadOnlyList<double> exact, IReadOnlyList<double> approx, int k)
    {
        ArgumentNullException.ThrowIfNull(exact);
        ArgumentNullException.ThrowIfNull(approx);
        var top = Enumerable.Range(0, exact.Count).OrderByDescending(i => exact[i]).ThenBy(i => i).Take(k).ToHashSet();
        var topApprox = Enumerable.Range(0, approx.Count).OrderByDescending(i => approx[i]).ThenBy(i => i).Take(k);
        return (double)topApprox.Count(top.Contains) / k;
    }

    /// <summary>1-based ranks, ties sharing their mean rank.</summary>
    internal static double[] Ranks(IReadOnlyList<double> values)
    {
        var order = Enumerable.Range(0, values.Count).OrderBy(i => values[i]).ToArray();
        var ranks = new double[values.Count];
        var i = 0;
        while (i < order.Length)
        {
            var j = i;
            while (j + 1 < order.Length && values[order[j + 1]] == values[order[i]])
            {
                j++;
            }

            for (var k = i; k <= j; k++)
            {
                ranks[order[k]] = ((i + j) / 2.0) + 1;
            }

            i = j + 1;
        }

        return ranks;
    }
}
