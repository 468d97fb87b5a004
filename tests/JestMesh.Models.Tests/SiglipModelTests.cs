using JestMesh.Data;
using static TorchSharp.torch;

namespace JestMesh.Models.Tests;

[Collection(TorchCollection.Name)]
[Trait("Tier", "Unit")]
public sealed class SiglipModelTests(RealPairs pairs)
{
    private readonly PairDataset _data = pairs.Data;

    [Fact]
    public void Embed_gives_unit_rows_of_width_d_and_the_initial_alpha_beta()
    {
        manual_seed(1);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        var examples = _data.Curated.Take(37).ToArray();
        var pixels = examples.SelectMany(p => _data.Train.Image(p.ImageIndex).ToArray()).ToArray();
        var batch = model.Embed(pixels, examples.Length, examples.Select(p => p.Tokens).ToArray(), batchSize: 16);
        Assert.Equal(37, batch.Count);
        Assert.Equal(64, batch.Dim);
        Assert.Equal(37 * 64, batch.Image.Length);
        Assert.Equal(37 * 64, batch.Text.Length);
        for (var i = 0; i < 37; i++)
        {
            Assert.Equal(1.0, Norm(batch.Image.AsSpan(i * 64, 64)), 4);
            Assert.Equal(1.0, Norm(batch.Text.AsSpan(i * 64, 64)), 4);
        }

        Assert.Equal(10f, batch.Alpha, 4);
        Assert.Equal(-10f, batch.Beta, 4);
    }

    [Fact]
    public void Batched_embedding_equals_one_pass()
    {
        manual_seed(2);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        using var tensors = new PairTensors(_data.Curated.Take(100).ToArray(), _data.Train);
        using var scope = NewDisposeScope();
        var (a, at) = model.EmbedTensors(tensors.Images, tensors.Tokens, batchSize: 1000);
        var (b, bt) = model.EmbedTensors(tensors.Images, tensors.Tokens, batchSize: 7);
        Assert.True(a.allclose(b, rtol: 1e-5, atol: 1e-6));
        Assert.True(at.allclose(bt, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Sigmoid_loss_matches_the_definition_term_by_term()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var img = nn.functional.normalize(randn(5, 8), p: 2, dim: 1);
        var txt = nn.functional.normalize(randn(5, 8), p: 2, dim: 1);
        var logT = tensor(MathF.Log(3f));
        var bias = tensor(-2f);
        var loss = SiglipModel.SigmoidLossForTests(img, txt, logT, bias).item<float>();

        var x = TensorConvert.ToArray(img);
        var t = TensorConvert.ToArray(txt);
        double expected = 0;
        for (var i = 0; i < 5; i++)
        {
            for (var j = 0; j < 5; j++)
            {
                double dot = 0;
                for (var k = 0; k < 8; k++)
                {
                    dot += x[(i * 8) + k] * t[(j * 8) + k];
                }

                var u = (3.0 * dot) - 2.0;
                var y = i == j ? 1.0 : -1.0;
                expected += -Math.Log(1.0 / (1.0 + Math.Exp(-y * u)));
            }
        }

        Assert.Equal(expected / 5, loss, 4);
    }

    [Fact]
    public void Loss_falls_over_a_few_dozen_steps_on_a_small_subset()
    {
        manual_seed(4);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        using var tensors = new PairTensors(_data.Curated.Take(512).ToArray(), _data.Train);
        using var trainer = new ModelTrainer(model, new TrainingOptions { TotalSteps = 48, WarmupSteps = 5, LearningRate = 2e-3 });
        var random = new Random(4);
        var losses = new List<float>();
        for (var step = 0; step < 48; step++)
        {
            var idx = Enumerable.Range(0, 512).OrderBy(_ => random.Next()).Take(64).Select(i => (long)i).ToArray();
            losses.Add(trainer.TrainStep(() =>
            {
                var (img, tok, _) = tensors.Gather(TensorConvert.Int64(idx));
                return model.Loss(img, tok);
            }));
        }

        var first = losses.Take(5).Average();
        var last = losses.TakeLast(5).Average();
        Assert.True(last < 0.7 * first, $"loss went from {first:F3} to {last:F3}");
    }

    [Fact]
    public void Learning_rate_warms_up_then_decays_to_zero()
    {
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        using var trainer = new ModelTrainer(model, new TrainingOptions { TotalSteps = 100, WarmupSteps = 10, LearningRate = 1e-3 });
        Assert.Equal(1e-4, trainer.LearningRateAt(0), 12);
        Assert.Equal(1e-3, trainer.LearningRateAt(10), 12);
        Assert.Equal(0.5e-3, trainer.LearningRateAt(55), 12);
        Assert.Equal(0, trainer.LearningRateAt(100), 12);
    }

    [Fact]
    public void Evaluation_scores_lie_in_range_and_untrained_model_is_near_chance()
    {
        manual_seed(5);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        using var evaluator = new Evaluator(_data, limit: 2000);
        var result = evaluator.Evaluate(model, batchSize: 300);
        Assert.InRange(result.ZeroShotAccuracy, 0.0, 0.35);
        Assert.InRange(result.RecallAt1, 0.0, 0.2);
        Assert.True(evaluator.DistinctCaptions > 100);
    }

    [Fact]
    public void Classifier_gives_per_example_losses_that_fall_with_training()
    {
        manual_seed(6);
        using var model = ClassifierModel.Create(new ModelConfig(), CPU);
        using var tensors = new PairTensors(_data.Curated.Take(256).ToArray(), _data.Train);
        var before = model.PerExampleLoss(tensors.Images, tensors.Labels);
        Assert.Equal(256, before.Length);
        using var trainer = new ModelTrainer(model, new TrainingOptions { TotalSteps = 30, WarmupSteps = 3, LearningRate = 2e-3 });
        for (var i = 0; i < 30; i++)
        {
            trainer.TrainStep(() => model.Loss(tensors.Images, tensors.Labels));
        }

        var after = model.PerExampleLoss(tensors.Images, tensors.Labels);
        Assert.True(after.Average() < 0.5 * before.Average(), $"mean CE {before.Average():F3} → {after.Average():F3}");
    }

    private static double Norm(ReadOnlySpan<float> v)
    {
        double s = 0;
        foreach (var x in v)
        {
            s += x * x;
        }

        return Math.Sqrt(s);
    }
}
