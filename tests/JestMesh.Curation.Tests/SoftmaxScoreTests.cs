namespace JestMesh.Curation.Tests;

[Trait("Tier", "Unit")]
public sealed class SoftmaxScoreTests
{
    [Theory]
    [InlineData(SelectionPolicy.Learnability, 90)]
    [InlineData(SelectionPolicy.HardLearner, 33)]
    [InlineData(SelectionPolicy.EasyReference, 300)] // parallel rows and several column blocks
    public void Conditional_scores_equal_direct_InfoNCE_with_the_selected_set_as_negatives(SelectionPolicy policy, int n)
    {
        const int dim = 12;
        const int chunk = 6;
        var random = new Random(3);
        var learner = Instances.Embeddings(random, n, dim, 9f, 0f, align: 0.4f);
        var reference = Instances.Embeddings(random, n, dim, 14f, 0f, align: 0.8f);
        var models = policy switch
        {
            SelectionPolicy.Learnability => new[] { (learner, 1.0), (reference, -1.0) },
            SelectionPolicy.HardLearner => new[] { (learner, 1.0) },
            _ => new[] { (reference, -1.0) },
        };
        var source = ScoreSources.SoftmaxContrastive(policy, learner, reference);
        Assert.False(source.IsPairwiseAdditive);
        var state = source.Start(chunk);
        var scores = new double[n];
        state.Initialize(scores);

        // First chunk: the whole super-batch as negatives (each example's ordinary InfoNCE loss).
        var all = Enumerable.Range(0, n).ToList();
        for (int c = 0; c < n; c++)
        {
            AssertClose(Loss(models, c, all, includeSelf: false), scores[c], $"Δ({c}|∅)");
        }

        var order = Enumerable.Range(0, n).OrderBy(_ => random.Next()).ToArray();
        var selected = new List<int>();
        for (int start = 0; start + chunk <= n && start < 5 * chunk; start += chunk)
        {
            state.Add(order.AsSpan(start, chunk), order.AsSpan(start + chunk), scores);
            selected.AddRange(order.AsSpan(start, chunk).ToArray());
            foreach (int c in order.AsSpan(start + chunk))
            {
                AssertClose(Loss(models, c, selected, includeSelf: true), scores[c], $"Δ({c}|𝒮, |𝒮|={selected.Count})");
            }
        }

        double want = selected.Sum(c => Loss(models, c, selected, includeSelf: false));
        AssertClose(want, state.SelectedScore, "s(𝒮)");
    }

    /// <summary>
    /// The fixed-shift exp sums (|α|·‖img‖·‖txt‖ ≤ 40) and the running-max path (larger α) against the literal definition on random instances:
    /// sizes that are not multiples of the panel and tile widths, chunks that are not multiples of 8, all policies, and unnormalised rows.
    /// </summary>
    [Theory]
    [InlineData(1, SelectionPolicy.Learnability, 257, 7, 13, 10f, 12f, 1f)]
    [InlineData(2, SelectionPolicy.Learnability, 300, 20, 64, 9f, 14f, 1f)]
    [InlineData(3, SelectionPolicy.HardLearner, 129, 9, 5, -11f, 3f, 1f)]
    [InlineData(4, SelectionPolicy.EasyReference, 77, 11, 16, 30f, 39f, 1f)]
    [InlineData(5, SelectionPolicy.Learnability, 200, 8, 24, 4f, 6f, 2.5f)] // |α|·norms = 25 and 37.5: still the fixed shift
    [InlineData(6, SelectionPolicy.Learnability, 150, 10, 16, 50f, 8f, 1f)] // learner over the bound: running max
    [InlineData(7, SelectionPolicy.Learnability, 96, 6, 32, 100f, 100f, 1f)] // CLIP's α = 100: running max
    [InlineData(8, SelectionPolicy.HardLearner, 1, 1, 8, 10f, 10f, 1f)]
    public void Random_instances_match_the_literal_definition(int seed, SelectionPolicy policy, int n, int chunk, int dim, float alphaLearner, float alphaReference, float scale)
    {
        var random = new Random(seed);
        var learner = Scaled(Instances.Embeddings(random, n, dim, alphaLearner, 0f, align: 0.5f), scale);
        var reference = Scaled(Instances.Embeddings(random, n, dim, alphaReference, 0f, align: 0.7f), scale);
        var models = policy switch
        {
            SelectionPolicy.Learnability => new[] { (learner, 1.0), (reference, -1.0) },
            SelectionPolicy.HardLearner => new[] { (learner, 1.0) },
            _ => new[] { (reference, -1.0) },
        };
        var state = ScoreSources.SoftmaxContrastive(policy, learner, reference).Start(chunk);
        var scores = new double[n];
        state.Initialize(scores);
        var all = Enumerable.Range(0, n).ToList();
        for (int c = 0; c < n; c++)
        {
            AssertClose(Loss(models, c, all, includeSelf: false), scores[c], $"Δ({c}|∅)");
        }

        var order = Enumerable.Range(0, n).ToArray();
        random.Shuffle(order);
        var selected = new List<int>();
        for (int start = 0; start + chunk <= n && start < 6 * chunk; start += chunk)
        {
            state.Add(order.AsSpan(start, chunk), order.AsSpan(start + chunk), scores);
            selected.AddRange(order.AsSpan(start, chunk).ToArray());
            foreach (int c in order.AsSpan(start + chunk))
            {
                AssertClose(Loss(models, c, selected, includeSelf: true), scores[c], $"Δ({c}|𝒮, |𝒮|={selected.Count})");
            }

            // s(𝒮) read mid-selection must not disturb later conditional scores. It sums 4·|𝒮| losses, each off by up to
            // ~|α|·1e-6 from the float dot products (the literal uses double), which matters at CLIP's α = 100.
            double want = selected.Sum(c => Loss(models, c, selected, includeSelf: false));
            double slack = 4 * selected.Count * Math.Max(Math.Abs(alphaLearner), Math.Abs(alphaReference)) * 1e-6;
            Assert.True(Math.Abs(state.SelectedScore - want) <= (1e-4 * Math.Max(1, Math.Abs(want))) + slack, $"s(𝒮) = {state.SelectedScore}, want {want}");
        }
    }

    [Fact]
    public void The_chunk_loop_allocates_nothing_on_the_calling_thread()
    {
        const int n = 64;
        var random = new Random(5);
        var source = ScoreSources.SoftmaxContrastive(
            SelectionPolicy.Learnability, Instances.Embeddings(random, n, 8, 10f, 0f), Instances.Embeddings(random, n, 8, 10f, 0f));
        var order = Enumerable.Range(0, n).ToArray();
        var scores = new double[n];
        for (int round = 0; round < 2; round++)
        {
            // Round 0 warms up the JIT; round 1 is measured. n = 64 keeps every pass on this thread.
            var state = source.Start(8);
            state.Initialize(scores);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int t = 0; t < 4; t++)
            {
                state.Add(order.AsSpan(t * 8, 8), order.AsSpan((t + 1) * 8), scores);
            }

            _ = state.SelectedScore;
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (round == 1)
            {
                Assert.Equal(0, allocated);
            }
        }
    }

    /// <summary>
    /// The reference's first-pass losses computed apart (as Scoring ships them) and handed to the source give the same selection as the
    /// source computing them itself: the same indices and the same score, bit for bit, on the fixed-shift path, the running-max path
    /// (a learner over the bound) and with the reference alone; with chunk sizes that differ from the block widths.
    /// </summary>
    [Theory]
    [InlineData(SelectionPolicy.Learnability, 300, 60, 5, 10f, 10f)]
    [InlineData(SelectionPolicy.Learnability, 257, 64, 8, 50f, 12f)] // learner over the fixed-shift bound, reference under it
    [InlineData(SelectionPolicy.Learnability, 130, 26, 2, 100f, 100f)] // both on the running max
    [InlineData(SelectionPolicy.EasyReference, 200, 40, 4, 10f, 14f)]
    [InlineData(SelectionPolicy.EasyReference, 96, 32, 4, 10f, 90f)]
    public void Supplied_reference_losses_select_exactly_what_computing_them_selects(SelectionPolicy policy, int n, int b, int chunks, float alphaLearner, float alphaReference)
    {
        var random = new Random(n);
        var learner = Instances.Embeddings(random, n, 16, alphaLearner, 0f, align: 0.5f);
        var reference = Instances.Embeddings(random, n, 16, alphaReference, 0f, align: 0.7f);
        var supplied = InfoNceLosses.Compute(reference);
        var options = new SamplerOptions { BatchSize = b, Chunks = chunks, Gain = 10 };
        for (int seed = 0; seed < 5; seed++)
        {
            var computed = JointSampler.Select(ScoreSources.SoftmaxContrastive(policy, learner, reference), options, new Random(seed));
            var shipped = JointSampler.Select(ScoreSources.SoftmaxContrastive(policy, learner, reference, supplied), options, new Random(seed));
            Assert.Equal(computed.Indices, shipped.Indices);
            Assert.Equal(computed.Score, shipped.Score);
        }

        // And the conditional scores of the first chunk are the same doubles.
        var want = new double[n];
        var got = new double[n];
        ScoreSources.SoftmaxContrastive(policy, learner, reference).Start(b / chunks).Initialize(want);
        ScoreSources.SoftmaxContrastive(policy, learner, reference, supplied).Start(b / chunks).Initialize(got);
        Assert.Equal(want, got);
    }

    [Theory]
    [InlineData(257, 10f)]
    [InlineData(70, 60f)] // running max
    public void Computed_losses_are_each_directions_InfoNCE_loss_over_the_super_batch(int n, float alpha)
    {
        var random = new Random(11);
        var model = Instances.Embeddings(random, n, 16, alpha, 0f, align: 0.6f);
        var losses = InfoNceLosses.Compute(model);
        Assert.Equal(n, losses.Count);
        for (int c = 0; c < n; c++)
        {
            double ucc = model.Alpha * Instances.Dot(model, c, c);
            double row = 0;
            double col = 0;
            for (int k = 0; k < n; k++)
            {
                row += Math.Exp((model.Alpha * Instances.Dot(model, c, k)) - ucc);
                col += Math.Exp((model.Alpha * Instances.Dot(model, k, c)) - ucc);
            }

            AssertClose(Math.Log(row), losses.ImageToText.Span[c], $"image→text loss of {c}");
            AssertClose(Math.Log(col), losses.TextToImage.Span[c], $"text→image loss of {c}");
        }
    }

    [Fact]
    public void Supplied_losses_of_another_size_or_not_finite_are_refused()
    {
        var random = new Random(2);
        var learner = Instances.Embeddings(random, 20, 8, 10f, 0f);
        var reference = Instances.Embeddings(random, 20, 8, 10f, 0f);
        var fewer = InfoNceLosses.Compute(Instances.Embeddings(random, 19, 8, 10f, 0f));
        var e = Assert.Throws<ArgumentException>(() => ScoreSources.SoftmaxContrastive(SelectionPolicy.Learnability, learner, reference, fewer));
        Assert.Equal("referenceLosses", e.ParamName);
        Assert.Throws<ArgumentException>(() => new InfoNceLosses([1, double.NaN], [1, 2]));
        Assert.Throws<ArgumentException>(() => new InfoNceLosses([1, 2], [1]));
    }

    private static ContrastiveEmbeddings Scaled(ContrastiveEmbeddings e, float scale)
    {
        var img = e.Image.ToArray();
        var txt = e.Text.ToArray();
        for (int i = 0; i < img.Length; i++)
        {
            img[i] *= scale;
            txt[i] *= scale;
        }

        return new ContrastiveEmbeddings(img, txt, e.Count, e.Dim, e.Alpha, e.Beta);
    }

    /// <summary>Σ_m sign_m·(i→t + t→i InfoNCE loss of c) with the given negatives; includeSelf adds the positive pair to the denominator.</summary>
    private static double Loss((ContrastiveEmbeddings E, double Sign)[] models, int c, List<int> negatives, bool includeSelf)
    {
        double total = 0;
        foreach (var (e, sign) in models)
        {
            double ucc = e.Alpha * Instances.Dot(e, c, c);
            double rowSum = includeSelf ? Math.Exp(ucc) : 0;
            double colSum = rowSum;
            foreach (int k in negatives)
            {
                rowSum += Math.Exp(e.Alpha * Instances.Dot(e, c, k));
                colSum += Math.Exp(e.Alpha * Instances.Dot(e, k, c));
            }

            total += sign * (Math.Log(rowSum) - ucc + Math.Log(colSum) - ucc);
        }

        return total;
    }

    private static void AssertClose(double want, double got, string what) =>
        Assert.True(Math.Abs(got - want) <= 1e-4 * Math.Max(1, Math.Abs(want)), $"{what} = {got}, want {want}");
}
