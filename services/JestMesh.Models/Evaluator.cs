using JestMesh.Data;
using static TorchSharp.torch;

namespace JestMesh.Models;

/// <summary>Test-set scores of one model: zero-shot accuracy with class prompts and image→text recall@1.</summary>
public sealed record EvalResult(double ZeroShotAccuracy, double RecallAt1);

/// <summary>Evaluates a SigLIP model on the clean test pairs; the test tensors are built once and reused.</summary>
/// <remarks>
/// Zero-shot: each class's text embedding is the normalised mean of its prompts ("a photo of a X" per synonym);
/// an image is correct when its nearest class is its label. R@1: each image retrieves among the distinct test
/// captions; it is correct when the top caption is its own caption's text (identical captions count as one,
/// because their embeddings are identical and a tie cannot be broken meaningfully).
/// </remarks>
public sealed class Evaluator : IDisposable
{
    private readonly Tensor _images;
    private readonly Tensor _labels;
    private readonly Tensor _promptTokens;
    private readonly int _promptsPerClass;
    private readonly Tensor _captionTokens;
    private readonly Tensor _captionOf;

    public Evaluator(PairDataset data, int? limit = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var pairs = limit is { } n ? data.TestPairs.Take(n).ToArray() : [.. data.TestPairs];
        Count = pairs.Length;
        using var tensors = new PairTensors(pairs, data.Test);
        _images = tensors.Images.clone().DetachFromDisposeScope();
        _labels = tensors.Labels.clone().DetachFromDisposeScope();

        var prompts = Enumerable.Range(0, FashionMnist.ClassCount).Select(Captions.ClassPrompts).ToArray();
        _promptsPerClass = prompts[0].Count;
        _promptTokens = TensorConvert.Tokens(prompts.SelectMany(p => p).ToArray(), Captions.MaxTokens).DetachFromDisposeScope();

        var distinct = new Dictionary<string, int>(StringComparer.Ordinal);
        var captionRows = new List<int[]>();
        var captionOf = new long[pairs.Length];
        for (var i = 0; i < pairs.Length; i++)
        {
            var key = string.Join(',', pairs[i].Tokens);
            if (!distinct.TryGetValue(key, out var id))
            {
                id = captionRows.Count;
                distinct[key] = id;
                captionRows.Add(pairs[i].Tokens);
            }

            captionOf[i] = id;
        }

        DistinctCaptions = captionRows.Count;
        _captionTokens = TensorConvert.Tokens(captionRows, Captions.MaxTokens).DetachFromDisposeScope();
        _captionOf = TensorConvert.Int64(captionOf).DetachFromDisposeScope();
    }

    public int Count { get; }

    public int DistinctCaptions { get; }

    public EvalResult Evaluate(SiglipModel model, int batchSize = 1000)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var wasTraining = model.training;
        model.eval();
        try
        {
            var prompts = model.EmbedText(_promptTokens).reshape(FashionMnist.ClassCount, _promptsPerClass, -1).mean([1]);
            var classes = nn.functional.normalize(prompts, p: 2, dim: 1);
            var captions = model.EmbedText(_captionTokens);
            long correctClass = 0, correctCaption = 0;
            for (long start = 0; start < Count; start += batchSize)
            {
                using var inner = NewDisposeScope();
                var len = Math.Min(batchSize, Count - start);
                var img = model.EncodeImages(_images.narrow(0, start, len));
                var predictedClass = img.matmul(classes.t()).argmax(1);
                correctClass += predictedClass.eq(_labels.narrow(0, start, len)).sum().item<long>();
                var predictedCaption = img.matmul(captions.t()).argmax(1);
                correctCaption += predictedCaption.eq(_captionOf.narrow(0, start, len)).sum().item<long>();
            }

            return new EvalResult((double)correctClass / Count, (double)correctCaption / Count);
        }
        finally
        {
            model.train(wasTraining);
        }
    }

    public void Dispose()
    {
        _images.Dispose();
        _labels.Dispose();
        _promptTokens.Dispose();
        _captionTokens.Dispose();
        _captionOf.Dispose();
    }
}
