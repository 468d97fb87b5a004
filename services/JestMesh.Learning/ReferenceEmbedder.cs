using System.Collections.Concurrent;
using JestMesh.Data.WebDataset;
using JestMesh.Models;
using TorchSharp;

namespace JestMesh.Learning;

/// <summary>
/// The frozen reference model on a dedicated thread. TorchSharp's dispose scopes and no-grad mode
/// belong to the OS thread, so every tensor operation runs on this one thread; callers await a
/// task and never hold tensors across an await. Inputs and outputs are plain arrays.
/// </summary>
public sealed class ReferenceEmbedder : IDisposable
{
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread _thread;
    private readonly int _batchSize;
    private SiglipModel? _model;
    private ReferenceBundle? _bundle;

    private ReferenceEmbedder(int batchSize)
    {
        _batchSize = batchSize;
        _thread = new Thread(Run) { IsBackground = true, Name = "reference-model" };
        _thread.Start();
    }

    public CheckpointMetadata Metadata { get; private set; } = new();

    public string DeviceName { get; private set; } = "";

    public int Dim => _bundle?.Dim ?? Metadata.Config.Dim;

    /// <summary>The PyTorch-exported bundle this embedder runs, when it runs one instead of a built-in checkpoint.</summary>
    public ReferenceBundle? Bundle => _bundle;

    public int VocabularySize => Metadata.Config.VocabularySize;

    public int MaxTokens => Metadata.Config.MaxTokens;

    /// <summary>The reference's α and β (frozen, read once).</summary>
    public float Alpha { get; private set; }

    public float Beta { get; private set; }

    /// <summary>
    /// Loads the checkpoint (SHA-256 checked) on the model thread: a built-in checkpoint, or a reference
    /// bundle exported from PyTorch (a directory with reference.json; <see cref="ReferenceBundle"/>, CPU).
    /// </summary>
    /// <exception cref="BundleException">The bundle cannot be used (one line naming the file or the method and shape).</exception>
    public static async Task<ReferenceEmbedder> LoadAsync(string checkpoint, string device, int batchSize)
    {
        var embedder = new ReferenceEmbedder(batchSize);
        try
        {
            await embedder.InvokeAsync(() =>
            {
                if (ReferenceBundle.IsBundle(checkpoint))
                {
                    var bundle = ReferenceBundle.Load(checkpoint);
                    embedder._bundle = bundle;
                    embedder.Metadata = new CheckpointMetadata { Architecture = "torchscript-bundle", Dim = bundle.Dim, Sha256 = bundle.Sha256 };
                    embedder.DeviceName = "cpu";
                    embedder.Alpha = bundle.Alpha;
                    embedder.Beta = bundle.Beta;
                    return true;
                }
                var target = ResolveDevice(device);
                var (model, metadata) = ModelCheckpoint.Load(checkpoint, target);
                model.eval();
                embedder._model = model;
                embedder.Metadata = metadata;
                embedder.DeviceName = target.ToString();
                embedder.Alpha = model.Alpha;
                embedder.Beta = model.Beta;
                return true;
            });
        }
        catch
        {
            embedder.Dispose();
            throw;
        }
        return embedder;
    }

    /// <summary>"auto" picks CUDA when TorchSharp finds a GPU; asking for CUDA without one is an error naming the setting.</summary>
    public static torch.Device ResolveDevice(string device)
    {
        ArgumentException.ThrowIfNullOrEmpty(device);
        if (device == "auto")
        {
            return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        }
        if (device.StartsWith("cuda", StringComparison.Ordinal) && !torch.cuda.is_available())
        {
            throw new InvalidOperationException($"Scoring:Device is '{device}' but TorchSharp finds no CUDA device here (TorchSharp-cpu build or no GPU); use 'auto' or 'cpu'.");
        }
        return torch.device(device);
    }

    /// <summary>
    /// No-grad, batched reference embeddings of <paramref name="inputs"/>: the built-in model takes their
    /// grey 28×28 pixels and caption ids, a bundle their <see cref="ExampleBatch.ReferenceInput"/> (the stored
    /// image and caption text, preprocessed as reference.json declares).
    /// </summary>
    /// <exception cref="ReferenceInputException">A bundle could not be given an example (its image does not decode).</exception>
    public Task<EmbeddingBatch> EmbedAsync(ExampleBatch inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return InvokeAsync(() => _bundle is null ? _model!.Embed(inputs.Pixels, inputs.Count, inputs.Tokens, _batchSize) : EmbedWithBundle(_bundle, inputs));
    }

    private EmbeddingBatch EmbedWithBundle(ReferenceBundle bundle, ExampleBatch inputs)
    {
        var count = inputs.Count;
        var d = bundle.Dim;
        var length = bundle.Spec.ContextLength;
        var image = new float[count * d];
        var text = new float[count * d];
        for (var start = 0; start < count; start += _batchSize)
        {
            var n = Math.Min(_batchSize, count - start);
            var x = new float[n * bundle.ImageSize];
            var t = new long[n * length];
            for (var i = 0; i < n; i++)
            {
                var (source, caption, name) = inputs.ReferenceInput(start + i);
                try
                {
                    bundle.DecodeImage(source, x.AsSpan(i * bundle.ImageSize, bundle.ImageSize));
                }
                catch (SampleRejectedException ex)
                {
                    throw new ReferenceInputException(inputs.Ids[start + i], name, ex.Message);
                }
                bundle.Tokenize(caption, t.AsSpan(i * length, length));
            }
            var (zi, zt) = bundle.Embed(x, t, n);
            zi.CopyTo(image, start * d);
            zt.CopyTo(text, start * d);
        }
        return new EmbeddingBatch(image, text, count, d, bundle.Alpha, bundle.Beta);
    }

    private Task<T> InvokeAsync<T>(Func<T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _work.Add(() =>
        {
            try
            {
                completion.SetResult(work());
            }
#pragma warning disable CA1031 // The failure is handed to the awaiting caller.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                completion.SetException(ex);
            }
        });
        return completion.Task;
    }

    private void Run()
    {
        foreach (var item in _work.GetConsumingEnumerable())
        {
            item();
        }
        _model?.Dispose();
        _bundle?.Dispose();
    }

    public void Dispose()
    {
        _work.CompleteAdding();
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }
        _work.Dispose();
    }
}
