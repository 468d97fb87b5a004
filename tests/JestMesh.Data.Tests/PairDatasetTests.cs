namespace JestMesh.Data.Tests;

/// <summary>Loads the real dataset once for all pair tests.</summary>
public sealed class RealImages
{
    public ImageSet Train { get; } = FashionMnist.LoadTrain(FashionMnist.DefaultDirectory);

    public ImageSet Test { get; } = FashionMnist.LoadTest(FashionMnist.DefaultDirectory);
}

[Trait("Tier", "Unit")]
public sealed class PairDatasetTests(RealImages images) : IClassFixture<RealImages>
{
    private PairDataset Build(DataOptions options) => PairDataset.Build(options, images.Train, images.Test);

    [Fact]
    public void Same_seed_gives_identical_pairs()
    {
        var a = Build(new DataOptions { Seed = 11 });
        var b = Build(new DataOptions { Seed = 11 });
        Assert.Equal(a.Fingerprint, b.Fingerprint);
        Assert.True(a.Pool.SequenceEqual(b.Pool, PairComparer.Instance));
        Assert.True(a.Curated.SequenceEqual(b.Curated, PairComparer.Instance));
        Assert.True(a.TestPairs.SequenceEqual(b.TestPairs, PairComparer.Instance));
    }

    [Fact]
    public void Different_seed_gives_different_captions_and_fingerprint()
    {
        var a = Build(new DataOptions { Seed = 1 });
        var b = Build(new DataOptions { Seed = 2 });
        Assert.NotEqual(a.Fingerprint, b.Fingerprint);
        var differing = a.TestPairs.Zip(b.TestPairs).Count(p => !p.First.Tokens.SequenceEqual(p.Second.Tokens));
        Assert.True(differing > 5000, $"only {differing} of 10000 test captions differ between seeds");
    }

    [Fact]
    public void Realised_swapped_share_matches_the_setting_and_swaps_change_the_caption()
    {
        var data = Build(new DataOptions { Seed = 3, SwappedShare = 0.7 });
        var swapped = data.Pool.Where(p => p.Kind == PairKind.Swapped).ToArray();
        Assert.Equal(57_000, data.Pool.Count);
        Assert.Equal(Math.Round(0.7 * 57_000), swapped.Length);

        // A swapped caption names the true class only when the donor image has the same class (~1 in 10).
        var namesOwnClass = swapped.Count(p => CaptionClasses(p.Tokens).Contains(p.Label));
        Assert.InRange(namesOwnClass / (double)swapped.Length, 0.05, 0.2);
        var clean = data.Pool.Where(p => p.Kind == PairKind.Clean).ToArray();
        Assert.All(clean, p => Assert.Contains(p.Label, CaptionClasses(p.Tokens)));
    }

    [Fact]
    public void Curated_set_is_clean_balanced_and_disjoint_from_the_pool()
    {
        var data = Build(new DataOptions { Seed = 5, CuratedSize = 3000 });
        Assert.Equal(3000, data.Curated.Count);
        Assert.All(data.Curated, p => Assert.Equal(PairKind.Clean, p.Kind));
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(300, data.Curated.Count(p => p.Label == c)));
        var curatedImages = data.Curated.Select(p => p.ImageIndex).ToHashSet();
        Assert.DoesNotContain(data.Pool, p => curatedImages.Contains(p.ImageIndex));
    }

    [Fact]
    public void Ids_are_unique_and_stable_across_seeds()
    {
        var a = Build(new DataOptions { Seed = 1, DuplicateShare = 0.1 });
        var all = a.Curated.Concat(a.Pool).Concat(a.TestPairs).Select(p => p.Id).ToArray();
        Assert.Equal(all.Length, all.Distinct().Count());
        Assert.All(a.Pool.Where(p => p.Kind != PairKind.Duplicate), p => Assert.Equal(p.ImageIndex, p.Id));
        Assert.All(a.TestPairs, p => Assert.Equal(PairDataset.TestIdBase + p.ImageIndex, p.Id));
    }

    [Fact]
    public void Near_duplicates_are_shifted_noisy_copies_with_their_own_images()
    {
        var data = Build(new DataOptions { Seed = 9, DuplicateShare = 0.05 });
        var dups = data.Pool.Where(p => p.Kind == PairKind.Duplicate).ToArray();
        Assert.Equal(Math.Round(0.05 * 57_000), dups.Length);
        Assert.Equal(60_000 + dups.Length, data.Train.Count);
        Assert.All(dups, d => Assert.True(d.ImageIndex >= 60_000));
        Assert.All(dups, d => Assert.Contains(d.Label, CaptionClasses(d.Tokens)));
    }

    [Fact]
    public void Captions_use_the_fixed_vocabulary_and_vary()
    {
        var data = Build(new DataOptions { Seed = 0 });
        Assert.All(data.TestPairs, p => Assert.Equal(Captions.MaxTokens, p.Tokens.Length));
        Assert.All(data.TestPairs, p => Assert.All(p.Tokens, t => Assert.InRange(t, 0, Captions.VocabularySize - 1)));
        var distinct = data.TestPairs.Select(p => Captions.Decode(p.Tokens)).Distinct().Count();
        Assert.True(distinct > 1000, $"only {distinct} distinct captions");
    }

    [Fact]
    public void Caption_attributes_describe_their_own_image()
    {
        var data = Build(new DataOptions { Seed = 4 });
        Assert.All(data.TestPairs, p =>
        {
            var (label, brightness, size) = Captions.Attributes(p.Tokens);
            var image = data.Test.Image(p.ImageIndex);
            Assert.Equal(p.Label, label);
            Assert.True(brightness < 0 || brightness == Captions.BrightnessBucket(image));
            Assert.True(size < 0 || size == Captions.SizeBucket(image));
        });
        Assert.Contains(data.TestPairs, p => Captions.Attributes(p.Tokens).Brightness < 0);
        Assert.Contains(data.TestPairs, p => Captions.Attributes(p.Tokens).Size >= 0);
    }

    [Fact]
    public void Bad_options_name_the_setting()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Build(new DataOptions { SwappedShare = 1.5 }));
        Assert.Equal("SwappedShare", e.ParamName);
    }

    // Which classes a caption names, found by matching it against every class's prompts' class words.
    private static HashSet<int> CaptionClasses(int[] tokens)
    {
        var text = " " + Captions.Decode(tokens) + " ";
        var found = new HashSet<int>();
        for (var c = 0; c < 10; c++)
        {
            foreach (var prompt in Captions.ClassPrompts(c))
            {
                var name = Captions.Decode(prompt)["a photo of a ".Length..];
                if (text.Contains(" " + name + " ", StringComparison.Ordinal))
                {
                    found.Add(c);
                }
            }
        }

        return found;
    }

    private sealed class PairComparer : IEqualityComparer<PairExample>
    {
        public static readonly PairComparer Instance = new();

        public bool Equals(PairExample? x, PairExample? y) =>
            x is not null && y is not null && x.Id == y.Id && x.ImageIndex == y.ImageIndex && x.Label == y.Label &&
            x.Kind == y.Kind && x.Tokens.SequenceEqual(y.Tokens);

        public int GetHashCode(PairExample obj) => obj.Id.GetHashCode();
    }
}
