using System.Diagnostics;
using System.Numerics.Tensors;

namespace JestMesh.Curation;

/// <summary>JEST joint example selection (§3.2): chunks drawn without replacement by Gumbel-top-k, each ∝ exp(gain·Δ(c|𝒮)).</summary>
public static class JointSampler
{
    /// <summary>Selects <see cref="SamplerOptions.BatchSize"/> examples. Uniform sources give a uniform random b-subset (gain and greedy ignored).</summary>
    /// <exception cref="ArgumentException">b ≤ 0 or b &gt; N, b not divisible by the chunks, chunks ≤ 0, gain negative or not finite.</exception>
    public static SelectionResult Select(IScoreSource scores, SamplerOptions options, Random random)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        int n = scores.Count;
        int b = options.BatchSize;
        int chunks = options.Chunks;
        if (n <= 0)
        {
            throw new ArgumentException($"the score source has {n} examples (empty super-batch).", nameof(scores));
        }

        // The offending option, not just "options", is what a caller needs to see in ParamName.
#pragma warning disable CA2208
        if (b <= 0 || b > n)
        {
            throw new ArgumentException($"BatchSize {b} must be in [1, N = {n}].", "options.BatchSize");
        }

        if (chunks <= 0 || b % chunks != 0)
        {
            throw new ArgumentException($"Chunks {chunks} must be positive and divide BatchSize {b}.", "options.Chunks");
        }

        if (!double.IsFinite(options.Gain) || options.Gain < 0)
        {
            throw new ArgumentException($"Gain {options.Gain} must be finite and non-negative.", "options.Gain");
        }
#pragma warning restore CA2208

        var clock = Stopwatch.StartNew();
        bool uniform = scores.Policy == SelectionPolicy.Uniform;
        double gain = uniform ? 0 : options.Gain;
        bool noise = uniform || !options.Greedy;
        int k = b / chunks;

        // Every buffer of the selection, allocated once; the chunk loop allocates nothing.
        var state = scores.Start(k);
        var delta = new double[n];
        var active = new int[n];
        var logits = new double[n];
        var keys = new double[n];
        var work = new double[n];
        var taken = new bool[n];
        var heap = new int[k];
        var indices = new int[b];
        var entropy = new double[chunks];
        for (int i = 0; i < n; i++)
        {
            active[i] = i;
        }

        state.Initialize(delta);
        int remaining = n;
        for (int t = 0; t < chunks; t++)
        {
            var candidates = active.AsSpan(0, remaining);
            var lg = logits.AsSpan(0, remaining);
            double max = double.NegativeInfinity;
            foreach (int c in candidates)
            {
                max = Math.Max(max, delta[c]);
            }

            for (int i = 0; i < lg.Length; i++)
            {
                // Shifting by the max keeps exp() in range; it changes neither the draw nor the entropy.
                lg[i] = gain == 0 ? 0 : gain * (delta[candidates[i]] - max);
            }

            entropy[t] = Entropy(lg, work.AsSpan(0, remaining));
            var key = keys.AsSpan(0, remaining);
            if (noise)
            {
                Gumbel(random, work.AsSpan(0, remaining));
                TensorPrimitives.Add(lg, work.AsSpan(0, remaining), key);
            }
            else
            {
                lg.CopyTo(key);
            }

            TopK(key, heap);
            var chunk = indices.AsSpan(t * k, k);
            for (int j = 0; j < k; j++)
            {
                chunk[j] = candidates[heap[j]];
                taken[heap[j]] = true;
            }

            int kept = 0;
            for (int i = 0; i < remaining; i++)
            {
                if (taken[i])
                {
                    taken[i] = false;
                }
                else
                {
                    active[kept++] = active[i];
                }
            }

            remaining = kept;
            // After the last chunk no candidate needs Δ any more; the call still folds the chunk into the score.
            state.Add(chunk, t == chunks - 1 ? [] : active.AsSpan(0, remaining), delta);
        }

        double score = uniform ? double.NaN : state.SelectedScore;
        return new SelectionResult(indices, score, entropy, clock.Elapsed);
    }

    /// <summary>Entropy (nats) of softmax(logits) for logits with max 0.</summary>
    private static double Entropy(ReadOnlySpan<double> logits, Span<double> work)
    {
        TensorPrimitives.Exp(logits, work);
        double z = TensorPrimitives.Sum(work);
        return Math.Log(z) - (TensorPrimitives.Dot(work, logits) / z);
    }

    /// <summary>Gumbel(0,1) noise −log(−log u) with u uniform on the open interval (0, 1).</summary>
    private static void Gumbel(Random random, Span<double> noise)
    {
        for (int i = 0; i < noise.Length; i++)
        {
            double u;
            do
            {
                u = random.NextDouble();
            }
            while (u == 0);
            noise[i] = u;
        }

        TensorPrimitives.Log(noise, noise);
        TensorPrimitives.Negate(noise, noise);
        TensorPrimitives.Log(noise, noise);
        TensorPrimitives.Negate(noise, noise);
    }

    /// <summary>Positions of the k largest keys, best first; ties go to the lower position so results are deterministic.</summary>
    private static void TopK(ReadOnlySpan<double> keys, Span<int> heap)
    {
        int k = heap.Length;
        int size = 0;
        for (int i = 0; i < keys.Length; i++)
        {
            if (size < k)
            {
                heap[size] = i;
                int child = size++;
                while (child > 0)
                {
                    int parent = (child - 1) / 2;
                    if (!Worse(keys, heap[child], heap[parent]))
                    {
                        break;
                    }

                    (heap[child], heap[parent]) = (heap[parent], heap[child]);
                    child = parent;
                }
            }
            else if (Worse(keys, heap[0], i))
            {
                heap[0] = i;
                SiftDown(keys, heap, 0, k);
            }
        }

        // Heap-sort in place: repeatedly move the worst to the end, leaving best first.
        for (int end = k - 1; end > 0; end--)
        {
            (heap[0], heap[end]) = (heap[end], heap[0]);
            SiftDown(keys, heap, 0, end);
        }
    }

    private static void SiftDown(ReadOnlySpan<double> keys, Span<int> heap, int i, int size)
    {
        while (true)
        {
            int l = (2 * i) + 1;
            if (l >= size)
            {
                return;
            }

            int w = l + 1 < size && Worse(keys, heap[l + 1], heap[l]) ? l + 1 : l;
            if (!Worse(keys, heap[w], heap[i]))
            {
                return;
            }

            (heap[w], heap[i]) = (heap[i], heap[w]);
            i = w;
        }
    }

    private static bool Worse(ReadOnlySpan<double> keys, int a, int b) => keys[a] < keys[b] || (keys[a] == keys[b] && a > b);
}
