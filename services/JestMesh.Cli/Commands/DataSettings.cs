using System.CommandLine;
using JestMesh.Data;

namespace JestMesh.Cli.Commands;

/// <summary>The options that define the data (shared by reference and learner training, which must agree).</summary>
internal sealed class DataSettings
{
    private readonly Option<int> _seed = new("--data-seed") { Description = "Seed of captions, curated split and swaps.", DefaultValueFactory = _ => 0 };
    private readonly Option<string> _pool = new("--pool") { Description = "default | weblike (long-tailed classes, swapped captions, near-duplicates of the reference's easiest pairs; README).", DefaultValueFactory = _ => PoolKinds.Default };
    private readonly Option<double?> _swapped = new("--swapped-share") { Description = "Share of pool captions swapped for another image's (default 0.7; 0.3 for --pool weblike, its recipe)." };
    private readonly Option<int> _curated = new("--curated-size") { Description = "Size of the clean, class-balanced reference set.", DefaultValueFactory = _ => 3000 };
    private readonly Option<double> _duplicates = new("--duplicate-share") { Description = "Near-duplicates added to the pool, as a share of it.", DefaultValueFactory = _ => 0.0 };
    private readonly Option<string> _directory = new("--data-dir") { Description = "Directory of the Fashion-MNIST IDX gzip files.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };

    public void AddTo(Command command)
    {
        command.Options.Add(_seed);
        command.Options.Add(_pool);
        command.Options.Add(_swapped);
        command.Options.Add(_curated);
        command.Options.Add(_duplicates);
        command.Options.Add(_directory);
    }

    public DataOptions Read(ParseResult result) => new()
    {
        Seed = result.GetValue(_seed),
        Pool = result.GetValue(_pool) ?? PoolKinds.Default,
        SwappedShare = result.GetValue(_swapped) ?? (result.GetValue(_pool) == PoolKinds.Weblike ? WeblikeRecipe.SwappedShare : 0.7),
        CuratedSize = result.GetValue(_curated),
        DuplicateShare = result.GetValue(_duplicates),
        Directory = result.GetValue(_directory) ?? FashionMnist.DefaultDirectory,
    };

    public static string Describe(DataOptions o) =>
        $"pool={o.Pool}, data-seed={o.Seed}, swapped-share={o.SwappedShare}, curated-size={o.CuratedSize}, duplicate-share={o.DuplicateShare}";
}
