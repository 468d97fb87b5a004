using System.CommandLine;
using System.Diagnostics;
using JestMesh.Data;
using JestMesh.Data.WebDataset;

namespace JestMesh.Cli.Commands;

/// <summary><c>jestmesh data wds</c>: the built-in data set as WebDataset shards.</summary>
internal static class DataCommand
{
    public static Command Create()
    {
        var data = new DataSettings();
        var output = new Option<string>("--out") { Description = "Directory to write: OUT/pool/pool-NNNNNN.tar and OUT/curated/curated-NNNNNN.tar.", Required = true };
        var shardSize = new Option<int>("--shard-size") { Description = "Samples per shard.", DefaultValueFactory = _ => 1000 };
        var wds = new Command("wds", "Write the built-in Fashion-MNIST pool (its swapped captions included) and curated set as WebDataset shards " +
            "(KEY.png + KEY.txt + KEY.json with id, label, kind, curated, image_index; KEY = the pair's id, 8 digits), in pool order.");
        data.AddTo(wds);
        wds.Options.Add(output);
        wds.Options.Add(shardSize);
        wds.SetAction(parse =>
        {
            var size = parse.GetValue(shardSize);
            if (size < 1)
            {
                Console.Error.WriteLine($"--shard-size {size} must be positive.");
                return 2;
            }
            var clock = Stopwatch.StartNew();
            var dataset = PairDataset.Build(data.Read(parse));
            var written = WdsWriter.WriteDataset(dataset, parse.GetValue(output)!, size);
            Console.WriteLine($"data wds: {dataset.Pool.Count} pool and {dataset.Curated.Count} curated pairs in {written.Count} shards " +
                $"({DataSettings.Describe(dataset.Options)}; fingerprint {dataset.Fingerprint}) in {clock.Elapsed.TotalSeconds:F1} s → {parse.GetValue(output)}");
            return 0;
        });
        var command = new Command("data", "Data sets in and out of JestMesh.");
        command.Subcommands.Add(wds);
        return command;
    }
}
