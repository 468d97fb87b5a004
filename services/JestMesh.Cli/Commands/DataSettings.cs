using System.CommandLine;
using JestMesh.Data;

namespace JestMesh.Cli.Commands;

/// <summary>The options that define the data (shared by reference and learner training, which must agree).</summary>
internal sealed class DataSettings
{
    private readonly Option<int> _seed = new("--data-seed") { Description = "Seed of captions, curated split and swaps.", DefaultValueFactory = _ => 0 };
    private readonly Option<double> _swapped = new("--swapped-share") { Description = "Share of pool captions swapped for another image's.", DefaultValueFactory = _ => 0.7 };
    private readonly Option<int> _curated = new("--curated-size") { Description = "Size of the clean, class-balanced reference set.", DefaultValueFactory = _ => 3000 };
    private readonly Option<double> _duplicates = new("--duplicate-share") { Description = "Near-duplicates added to the pool, as a share of it.", DefaultValueFactory = _ => 0.0 };
    private readonly Option<string> _directory = new("--data-dir") { Description = "Directory of the Fashion-MNIST IDX gzip files.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };

    public void AddTo(Command command)
    {
        command.Options.Add(_seed);
        command.Options.Add(_swapped);
        command.Options.Add(_curated);
        command.Options.Add(_duplicates);
        command.Options.Add(_directory);
    }

    public DataOptions Read(ParseResult result) => new()
    {
        Seed = result.GetValue(_seed),
        SwappedShare = result.GetValue(_swapped),
        CuratedSize = result.GetValue(_curated),
        DuplicateShare = result.GetValue(_duplicates),
        Directory = result.GetValue(_directory) ?? FashionMnist.DefaultDirectory,
    };

    public static string Describe(DataOptions o) =>
        $"data-seed={o.Seed}, swapped-share={o.SwappedShare}, curated-size={o.CuratedSize}, duplicate-share={o.DuplicateShare}";
}
