using System.CommandLine;
using JestMesh.Cli.InProcess;

namespace JestMesh.Cli.Commands;

/// <summary><c>jestmesh reference train</c>: trains the reference model on the curated set.</summary>
internal static class ReferenceCommand
{
    public static Command Create()
    {
        var data = new DataSettings();
        var epochs = new Option<int>("--epochs") { Description = "Passes over the curated set (10 worked best; 30 overfits).", DefaultValueFactory = _ => 10 };
        var batch = new Option<int>("--batch-size") { Description = "Pairs per step.", DefaultValueFactory = _ => 128 };
        var lr = new Option<double>("--lr") { Description = "Peak AdamW learning rate.", DefaultValueFactory = _ => 1e-3 };
        var seed = new Option<int>("--seed") { Description = "Seed of initialisation and batch order.", DefaultValueFactory = _ => 0 };
        var threads = new Option<int>("--threads") { Description = "Torch intra-op threads (0 = libtorch default).", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Checkpoint directory to write.", Required = true };

        var train = new Command("train", "Train the reference on the small curated set; writes model.bin, metadata.json (SHA-256) and metrics.json.");
        data.AddTo(train);
        train.Options.Add(epochs);
        train.Options.Add(batch);
        train.Options.Add(lr);
        train.Options.Add(seed);
        train.Options.Add(threads);
        train.Options.Add(output);
        train.SetAction(parse =>
        {
            var dataOptions = data.Read(parse);
            var settings = new ReferenceSettings(dataOptions, parse.GetValue(epochs), parse.GetValue(batch), parse.GetValue(lr),
                parse.GetValue(seed), parse.GetValue(output)!);
            if (settings.Epochs <= 0 || settings.BatchSize <= 0 || settings.BatchSize > dataOptions.CuratedSize)
            {
                Console.Error.WriteLine($"--epochs ({settings.Epochs}) must be positive and --batch-size ({settings.BatchSize}) in [1, --curated-size = {dataOptions.CuratedSize}].");
                return 2;
            }

            Threads.Apply(parse.GetValue(threads));
            var m = ReferenceTraining.Run(settings);
            var last = m.Eval[^1];
            Console.WriteLine($"reference: zero-shot {last.ZeroShotAcc:P2}, R@1 {last.RAt1:P2}, swapped-pair AUROC {m.SwappedAuroc:F3}, " +
                $"{m.Steps} steps in {m.WallSeconds:F0} s ({m.Threads} threads) → {settings.Out}");
            return 0;
        });

        var reference = new Command("reference", "The frozen reference model that JEST scores against.");
        reference.Subcommands.Add(train);
        return reference;
    }
}
