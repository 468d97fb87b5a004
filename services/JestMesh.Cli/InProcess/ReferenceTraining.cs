using System.Diagnostics;
using JestMesh.Data;
using JestMesh.Models;
using static TorchSharp.torch;

namespace JestMesh.Cli.InProcess;

/// <summary>Settings of reference training on the curated set.</summary>
internal sealed record ReferenceSettings(DataOptions Data, int Epochs, int BatchSize, double LearningRate, int Seed, string Out);

/// <summary>What reference training writes next to its checkpoint.</summary>
internal sealed record ReferenceMetrics(
    string DataFingerprint, int Epochs, int Steps, int BatchSize, double LearningRate, int Seed, int Threads,
    List<EvalPoint> Eval, List<float> Loss, double SwappedAuroc, double WallSeconds);

/// <summary>Trains the reference on the curated set and writes its checkpoint and metrics.</summary>
internal static class ReferenceTraining
{
    public static ReferenceMetrics Run(ReferenceSettings s)
    {
        var clock = Stopwatch.StartNew();
        var data = PairDataset.Build(s.Data);
        manual_seed(s.Seed);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        using var curated = new PairTensors(data.Curated, data.Train);
        using var evaluator = new Evaluator(data);
        var stepsPerEpoch = data.Curated.Count / s.BatchSize;
        var total = stepsPerEpoch * s.Epochs;
        using var trainer = new ModelTrainer(model, new TrainingOptions
        {
            TotalSteps = total,
            WarmupSteps = Math.Max(1, total / 20),
            LearningRate = s.LearningRate,
        });
        var random = new Random(s.Seed);
        var order = Enumerable.Range(0, data.Curated.Count).Select(i => (long)i).ToArray();
        var losses = new List<float>(total);
        var evals = new List<EvalPoint>();
        Progress.Run($"reference ({data.Curated.Count} curated pairs, {s.Epochs} epochs)", total, report =>
        {
            for (var epoch = 0; epoch < s.Epochs; epoch++)
            {
                random.Shuffle(order);
                for (var k = 0; k < stepsPerEpoch; k++)
                {
                    var batch = order.AsSpan(k * s.BatchSize, s.BatchSize).ToArray();
                    losses.Add(trainer.TrainStep(() =>
                    {
                        var (img, tok, _) = curated.Gather(TensorConvert.Int64(batch));
                        return model.Loss(img, tok);
                    }));
                    report(trainer.Step, null);
                }

                var e = evaluator.Evaluate(model);
                evals.Add(EvalPoint.At(trainer.Step, e));
                report(trainer.Step, $"epoch {epoch + 1}: zero-shot {e.ZeroShotAccuracy:P1}, R@1 {e.RecallAt1:P1}");
            }

            return 0;
        });

        var auroc = SwappedAuroc(model, data);
        var last = evals[^1];
        ModelCheckpoint.Save(s.Out, model, new CheckpointMetadata
        {
            DataFingerprint = data.Fingerprint,
            DataSeed = s.Data.Seed,
            SwappedShare = s.Data.SwappedShare,
            CuratedSize = s.Data.CuratedSize,
            DuplicateShare = s.Data.DuplicateShare,
            Step = trainer.Step,
            Metrics = new() { ["zero_shot_acc"] = last.ZeroShotAcc, ["r_at_1"] = last.RAt1, ["swapped_auroc"] = auroc },
        });
        var metrics = new ReferenceMetrics(data.Fingerprint, s.Epochs, total, s.BatchSize, s.LearningRate, s.Seed, get_num_threads(),
            evals, losses, auroc, clock.Elapsed.TotalSeconds);
        JsonFiles.Write(Path.Combine(s.Out, "metrics.json"), metrics);
        return metrics;
    }

    /// <summary>
    /// How well the model's own pair score α⟨x_i, t_i⟩ + β separates true from swapped pool pairs (AUROC):
    /// the property that makes it useful as a JEST reference.
    /// </summary>
    private static double SwappedAuroc(SiglipModel model, PairDataset data)
    {
        var sample = data.Pool.Where(p => p.Kind != PairKind.Duplicate).Take(10_000).ToArray();
        using var tensors = new PairTensors(sample, data.Train);
        using var scope = NewDisposeScope();
        var (img, txt) = model.EmbedTensors(tensors.Images, tensors.Tokens, 1024);
        var score = TensorConvert.ToArray(img.mul(txt).sum(1));
        return Auroc(score, sample.Select(p => p.Kind == PairKind.Clean).ToArray());
    }

    /// <summary>Probability that a random positive scores above a random negative (ties count half).</summary>
    internal static double Auroc(float[] score, bool[] positive)
    {
        var order = Enumerable.Range(0, score.Length).OrderBy(i => score[i]).ToArray();
        double rankSum = 0;
        long pos = 0;
        var i = 0;
        while (i < order.Length)
        {
            var j = i;
            while (j + 1 < order.Length && score[order[j + 1]] == score[order[i]])
            {
                j++;
            }

            var midRank = ((i + j) / 2.0) + 1;
            for (var k = i; k <= j; k++)
            {
                if (positive[order[k]])
                {
                    rankSum += midRank;
                    pos++;
                }
            }

            i = j + 1;
        }

        long neg = score.Length - pos;
        return pos == 0 || neg == 0 ? double.NaN : (rankSum - (pos * (pos + 1) / 2.0)) / ((double)pos * neg);
    }
}
