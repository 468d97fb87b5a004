using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace JestMesh.Data;

/// <summary>Ground truth of a pair: its own caption, another image's caption, or a near-duplicate of a clean pair.</summary>
public enum PairKind
{
    Clean,
    Swapped,
    Duplicate,
}

/// <summary>One image–text pair with a stable id and its ground truth.</summary>
/// <param name="Id">Stable across seeds: the train image index, <see cref="PairDataset.TestIdBase"/> + test index, or <see cref="PairDataset.DuplicateIdBase"/> + k.</param>
/// <param name="ImageIndex">Index into <see cref="PairDataset.Train"/> (curated, pool) or <see cref="PairDataset.Test"/> (test pairs).</param>
/// <param name="Label">The image's true class (a swapped caption may describe another class).</param>
/// <param name="Tokens">Caption tokens padded to <see cref="Captions.MaxTokens"/>.</param>
/// <param name="Kind">Ground truth: clean, swapped caption, or near-duplicate.</param>
public sealed record PairExample(long Id, int ImageIndex, int Label, int[] Tokens, PairKind Kind);

/// <summary>The pools JestMesh can build (<see cref="DataOptions.Pool"/>).</summary>
public static class PoolKinds
{
    /// <summary>Every non-curated training image once, a share of captions swapped, optional near-duplicates of random clean pairs.</summary>
    public const string Default = "default";

    /// <summary>Web-like: long-tailed classes, swapped captions and near-duplicates of the reference's easiest pairs (<see cref="WeblikeRecipe"/>).</summary>
    public const string Weblike = "weblike";

    public static IReadOnlyList<string> All { get; } = [Default, Weblike];
}

/// <summary>
/// The web-like pool's recipe, fixed before any policy ran on it (README "The web-like pool"). From the
/// training images left after the curated set (drawn exactly as for the default pool: class-balanced, clean):
/// class frequencies are long-tailed, class of rank r (a seeded order of the ten classes) keeping
/// round(M·10^(−r/9)) images, M the smallest class's count, so largest/smallest = 10; a share
/// <see cref="SwappedShare"/> of them get another pool image's caption (rotated as in the default pool);
/// then <see cref="DuplicateShare"/> × that many near-duplicates are added, each a copy of one of the
/// <see cref="DuplicateSources"/> clean pool pairs the reference finds easiest (lowest pair loss), shifted by
/// at most one pixel with ±8 grey-level noise and captioned afresh.
/// </summary>
public static class WeblikeRecipe
{
    public const double ClassRatio = 10;
    public const double SwappedShare = 0.3;
    public const double DuplicateShare = 0.25;
    public const int DuplicateSources = 64;

    /// <summary>Images kept for the class of rank <paramref name="rank"/> (0 = most frequent) when the smallest class offers <paramref name="available"/>.</summary>
    public static int ClassCount(int rank, int available) =>
        (int)Math.Round(available * Math.Pow(ClassRatio, -rank / (double)(FashionMnist.ClassCount - 1)));

    public static string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"weblike(ratio={ClassRatio:R},swapped={SwappedShare:R},duplicates={DuplicateShare:R},sources={DuplicateSources})");
}

/// <summary>
/// Pair losses of the reference on <paramref name="pairs"/> (images in <paramref name="images"/>), one per
/// pair, lower = easier: how the web-like pool finds the examples to duplicate.
/// </summary>
public delegate double[] ReferencePairLoss(IReadOnlyList<PairExample> pairs, ImageSet images);

/// <summary>The settings that define the pairs; the same options always give the same data.</summary>
public sealed record DataOptions
{
    public int Seed { get; init; }

    /// <summary><see cref="PoolKinds.Default"/> or <see cref="PoolKinds.Weblike"/>.</summary>
    public string Pool { get; init; } = PoolKinds.Default;

    /// <summary>Share of pool pairs whose caption is swapped for another image's caption.</summary>
    public double SwappedShare { get; init; } = 0.7;

    /// <summary>Size of the clean, class-balanced reference set.</summary>
    public int CuratedSize { get; init; } = 3000;

    /// <summary>Near-duplicates added to the pool, as a share of the pool's size.</summary>
    public double DuplicateShare { get; init; }

    public string Directory { get; init; } = FashionMnist.DefaultDirectory;

    public void Validate()
    {
        if (double.IsNaN(SwappedShare) || SwappedShare is < 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(SwappedShare), SwappedShare, "SwappedShare must be in [0, 1].");
        }

        if (CuratedSize is < FashionMnist.ClassCount or > 30_000)
        {
            throw new ArgumentOutOfRangeException(nameof(CuratedSize), CuratedSize, "CuratedSize must be in [10, 30000].");
        }

        if (double.IsNaN(DuplicateShare) || DuplicateShare is < 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(DuplicateShare), DuplicateShare, "DuplicateShare must be in [0, 1].");
        }

        if (!PoolKinds.All.Contains(Pool))
        {
            throw new ArgumentOutOfRangeException(nameof(Pool), Pool, $"Pool must be one of {string.Join(", ", PoolKinds.All)}.");
        }

        if (Pool == PoolKinds.Weblike && DuplicateShare != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(DuplicateShare), DuplicateShare, "the web-like pool's duplicates are part of its recipe: leave DuplicateShare at 0.");
        }
    }
}

/// <summary>The curated reference set, the noisy learner pool and the clean test pairs, reproducible from options.</summary>
public sealed class PairDataset
{
    public const long TestIdBase = 1L << 20;
    public const long DuplicateIdBase = 2L << 20;
    private const int FormatVersion = 1;

    private PairDataset(DataOptions options, ImageSet train, ImageSet test, PairExample[] curated, PairExample[] pool, PairExample[] testPairs, int? fingerprintTrainCount = null)
    {
        Options = options;
        Train = train;
        Test = test;
        Curated = curated;
        Pool = pool;
        TestPairs = testPairs;
        Fingerprint = ComputeFingerprint(options, fingerprintTrainCount ?? train.Count, test.Count);
    }

    public DataOptions Options { get; }

    /// <summary>The 60k training images, followed by any near-duplicate images the pool refers to.</summary>
    public ImageSet Train { get; }

    public ImageSet Test { get; }

    public IReadOnlyList<PairExample> Curated { get; }

    public IReadOnlyList<PairExample> Pool { get; }

    public IReadOnlyList<PairExample> TestPairs { get; }

    /// <summary>Hash of everything that defines the pairs (not the directory), for mismatch checks between runs.</summary>
    public string Fingerprint { get; }

    /// <summary>
    /// Builds the pairs. The web-like pool needs <paramref name="referenceLoss"/> to pick its duplicate sources;
    /// without it the web-like pool has no near-duplicates (<see cref="DuplicatesOmitted"/>; enough for training
    /// the reference, which sees only the curated set).
    /// </summary>
    public static PairDataset Build(DataOptions options, ReferencePairLoss? referenceLoss = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return Build(options, FashionMnist.LoadTrain(options.Directory), FashionMnist.LoadTest(options.Directory), referenceLoss);
    }

    /// <summary>True for a web-like pool built without the reference: its near-duplicates are missing.</summary>
    public bool DuplicatesOmitted { get; private init; }

    /// <summary>Builds the pairs from images already loaded (tests use small sets).</summary>
    public static PairDataset Build(DataOptions options, ImageSet train, ImageSet test, ReferencePairLoss? referenceLoss = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        options.Validate();

        // Independent streams per purpose, so changing e.g. the swapped share leaves the curated set alone.
        var captionRandom = new Random(Mix(options.Seed, 1));
        var splitRandom = new Random(Mix(options.Seed, 2));
        var swapRandom = new Random(Mix(options.Seed, 3));
        var duplicateRandom = new Random(Mix(options.Seed, 4));
        var testRandom = new Random(Mix(options.Seed, 5));

        var captions = new int[train.Count][];
        for (var i = 0; i < train.Count; i++)
        {
            captions[i] = Captions.Describe(train.Image(i), train.Labels[i], captionRandom);
        }

        var curatedIndices = BalancedSubset(train.Labels, options.CuratedSize, splitRandom);
        var inCurated = new bool[train.Count];
        foreach (var i in curatedIndices)
        {
            inCurated[i] = true;
        }

        var curated = curatedIndices.Order().Select(i => new PairExample(i, i, train.Labels[i], captions[i], PairKind.Clean)).ToArray();
        var poolIndices = Enumerable.Range(0, train.Count).Where(i => !inCurated[i]).ToArray();
        var weblike = options.Pool == PoolKinds.Weblike;
        if (weblike)
        {
            poolIndices = LongTail(poolIndices, train.Labels, new Random(Mix(options.Seed, 6)));
        }

        // A random subset's captions are rotated one place along a random order: every swapped image gets
        // a caption that belongs to a different image, and the pool's caption distribution is unchanged.
        var swappedCount = (int)Math.Round(options.SwappedShare * poolIndices.Length);
        var order = (int[])poolIndices.Clone();
        swapRandom.Shuffle(order);
        var swapped = order.AsSpan(0, swappedCount).ToArray();
        var poolCaption = new Dictionary<int, int[]>(swappedCount);
        for (var k = 0; k < swapped.Length && swapped.Length > 1; k++)
        {
            poolCaption[swapped[k]] = captions[swapped[(k + 1) % swapped.Length]];
        }

        var pool = new List<PairExample>(poolIndices.Length);
        foreach (var i in poolIndices)
        {
            pool.Add(poolCaption.TryGetValue(i, out var other)
                ? new PairExample(i, i, train.Labels[i], other, PairKind.Swapped)
                : new PairExample(i, i, train.Labels[i], captions[i], PairKind.Clean));
        }

        var trainImages = train;
        var omitted = false;
        if (weblike)
        {
            if (referenceLoss is null)
            {
                omitted = true;
            }
            else
            {
                var clean = pool.Where(p => p.Kind == PairKind.Clean).ToArray();
                var losses = referenceLoss(clean, train);
                if (losses.Length != clean.Length || losses.Any(l => !double.IsFinite(l)))
                {
                    throw new InvalidOperationException($"the reference gave {losses.Length} finite-or-not losses for {clean.Length} pairs.");
                }

                var easiest = Enumerable.Range(0, clean.Length).OrderBy(i => losses[i]).ThenBy(i => clean[i].Id)
                    .Take(WeblikeRecipe.DuplicateSources).Select(i => clean[i]).ToArray();
                (trainImages, var duplicates) = AddNearDuplicates(train, easiest, (int)Math.Round(WeblikeRecipe.DuplicateShare * poolIndices.Length), new Random(Mix(options.Seed, 7)));
                pool.AddRange(duplicates);
            }
        }

        var duplicateCount = (int)Math.Round(options.DuplicateShare * poolIndices.Length);
        if (duplicateCount > 0)
        {
            var clean = pool.Where(p => p.Kind == PairKind.Clean).ToArray();
            if (clean.Length == 0)
            {
                throw new ArgumentException("DuplicateShare > 0 needs clean pool pairs to copy, but SwappedShare leaves none.", nameof(options));
            }

            (trainImages, var duplicates) = AddNearDuplicates(train, clean, duplicateCount, duplicateRandom);
            pool.AddRange(duplicates);
        }

        var testPairs = new PairExample[test.Count];
        for (var i = 0; i < test.Count; i++)
        {
            testPairs[i] = new PairExample(TestIdBase + i, i, test.Labels[i], Captions.Describe(test.Image(i), test.Labels[i], testRandom), PairKind.Clean);
        }

        // The web-like pool's fingerprint names the recipe, not whether its duplicates were built (the reference, trained
        // without them, and the runs that use them must agree): count the original images only.
        return new PairDataset(options, trainImages, test, curated, [.. pool], testPairs, weblike ? train.Count : null) { DuplicatesOmitted = omitted };
    }

    /// <summary>The web-like pool's long tail: classes in a seeded order keep <see cref="WeblikeRecipe.ClassCount"/> of their images, chosen at random.</summary>
    private static int[] LongTail(int[] poolIndices, byte[] labels, Random random)
    {
        var byClass = Enumerable.Range(0, FashionMnist.ClassCount).Select(c => poolIndices.Where(i => labels[i] == c).ToArray()).ToArray();
        var available = byClass.Min(c => c.Length);
        var classOrder = Enumerable.Range(0, FashionMnist.ClassCount).ToArray();
        random.Shuffle(classOrder);
        var kept = new List<int>();
        for (var rank = 0; rank < classOrder.Length; rank++)
        {
            var members = byClass[classOrder[rank]];
            random.Shuffle(members);
            kept.AddRange(members.AsSpan(0, WeblikeRecipe.ClassCount(rank, available)).ToArray());
        }

        return [.. kept.Order()];
    }

    private static int[] BalancedSubset(byte[] labels, int size, Random random)
    {
        var byClass = Enumerable.Range(0, FashionMnist.ClassCount)
            .Select(c => Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).ToArray()).ToArray();
        var chosen = new List<int>(size);
        for (var c = 0; c < byClass.Length; c++)
        {
            var want = (size / byClass.Length) + (c < size % byClass.Length ? 1 : 0);
            if (byClass[c].Length < want)
            {
                throw new ArgumentException($"class {c} has {byClass[c].Length} images, fewer than the {want} a curated set of {size} needs.", nameof(size));
            }

            random.Shuffle(byClass[c]);
            chosen.AddRange(byClass[c].AsSpan(0, want).ToArray());
        }

        return [.. chosen];
    }

    // A near-duplicate is the image shifted by one pixel with light noise, captioned afresh for that image.
    private static (ImageSet Images, PairExample[] Pairs) AddNearDuplicates(ImageSet train, PairExample[] clean, int count, Random random)
    {
        var pixels = new byte[(train.Count + count) * ImageSet.PixelsPerImage];
        var labels = new byte[train.Count + count];
        train.Pixels.CopyTo(pixels, 0);
        train.Labels.CopyTo(labels, 0);
        var pairs = new PairExample[count];
        for (var k = 0; k < count; k++)
        {
            var source = clean[random.Next(clean.Length)];
            var index = train.Count + k;
            var dx = random.Next(3) - 1;
            var dy = random.Next(3) - 1;
            var src = train.Image(source.ImageIndex);
            var dst = pixels.AsSpan(index * ImageSet.PixelsPerImage, ImageSet.PixelsPerImage);
            for (var y = 0; y < ImageSet.Side; y++)
            {
                for (var x = 0; x < ImageSet.Side; x++)
                {
                    var sy = y - dy;
                    var sx = x - dx;
                    var v = sy is >= 0 and < ImageSet.Side && sx is >= 0 and < ImageSet.Side ? src[(sy * ImageSet.Side) + sx] : 0;
                    dst[(y * ImageSet.Side) + x] = (byte)Math.Clamp(v + random.Next(-8, 9), 0, 255);
                }
            }

            labels[index] = (byte)source.Label;
            pairs[k] = new PairExample(DuplicateIdBase + k, index, source.Label, Captions.Describe(dst, source.Label, random), PairKind.Duplicate);
        }

        return (new ImageSet(pixels, labels), pairs);
    }

    // Fixed arithmetic, not HashCode (randomised per process): streams must be the same in every run.
    private static int Mix(int seed, int stream) => unchecked((seed * 1_000_003) + (stream * 7919));

    private static string ComputeFingerprint(DataOptions o, int trainCount, int testCount)
    {
        // The default pool's text is unchanged, so existing checkpoints keep their fingerprints.
        var pool = o.Pool == PoolKinds.Default ? "" : "|pool=" + WeblikeRecipe.Describe();
        var text = string.Create(CultureInfo.InvariantCulture,
            $"v{FormatVersion}|seed={o.Seed}|swapped={o.SwappedShare:R}|curated={o.CuratedSize}|duplicates={o.DuplicateShare:R}|train={trainCount}|test={testCount}|vocab={Captions.VocabularySize}{pool}");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }
}
