using JestMesh.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace JestMesh.Models.Tests;

[Collection(TorchCollection.Name)]
[Trait("Tier", "Unit")]
public sealed class LeakTests(RealPairs pairs)
{
    private readonly PairDataset _data = pairs.Data;

    [Fact]
    public void Live_tensor_count_is_flat_across_hundreds_of_training_and_scoring_steps()
    {
        manual_seed(21);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        using var tensors = new PairTensors(_data.Curated.Take(256).ToArray(), _data.Train);
        using var trainer = new ModelTrainer(model, new TrainingOptions { TotalSteps = 300, WarmupSteps = 10 });
        var random = new Random(21);
        long liveAfterWarmup = 0, totalAfterWarmup = 0, outsideAfterWarmup = 0;
        for (var step = 0; step < 300; step++)
        {
            // One learner step as the in-process trainer does it: score the super-batch, train on a sub-batch.
            using (var scope = NewDisposeScope())
            {
                var (img, txt) = model.EmbedTensors(tensors.Images, tensors.Tokens, batchSize: 256);
                _ = TensorConvert.ToArray(img);
                _ = TensorConvert.ToArray(txt);
            }

            var idx = Enumerable.Range(0, 256).OrderBy(_ => random.Next()).Take(32).Select(i => (long)i).ToArray();
            trainer.TrainStep(() =>
            {
                var (img, tok, _) = tensors.Gather(TensorConvert.Int64(idx));
                return model.Loss(img, tok);
            });
            if (step == 20)
            {
                // Clear garbage left by earlier tests so only this loop's tensors can move the counts.
                GC.Collect();
                GC.WaitForPendingFinalizers();
                outsideAfterWarmup = DisposeScopeManager.Statistics.CreatedOutsideScopeCount;
                liveAfterWarmup = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
                totalAfterWarmup = torch.Tensor.TotalCount;
            }
        }

        // Every tensor the steps create belongs to a dispose scope (none waits for the GC finaliser)...
        Assert.Equal(outsideAfterWarmup, DisposeScopeManager.Statistics.CreatedOutsideScopeCount);

        // ...and the number alive after 280 more steps is what it was.
        Assert.Equal(liveAfterWarmup, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Equal(totalAfterWarmup, torch.Tensor.TotalCount);
    }
}
