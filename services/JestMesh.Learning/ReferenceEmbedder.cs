using System.Collections.Concurrent;
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

    private ReferenceEmbedder(int batchSize)
    {
        _batchSize = batchSize;
        _thread = new Thread(Run) { IsBackground = true, Name = "reference-model" };
        _thread.Start();
    }

    public CheckpointMetadata Metadata { get; private set; } = new();

    public string DeviceName { get; private set; } = "";

    public int Dim => Metadata.Config.Dim;

    public int VocabularySize => Metadata.Config.VocabularySize;

    public int MaxTokens => Metadata.Config.MaxTokens;

    /// <summary>The reference's α and β (frozen, read once).</summary>
    public float Alpha { get; private set; }

    public float Beta { get; private set; }

    /// <summary>Loads the checkpoint (SHA-256 checked) on the model thread.</summary>
    public static async Task<ReferenceEmbedder> LoadAsync(string checkpoint, string device, int batchSize)
    {
        var embedder = new ReferenceEmbedder(batchSize);
        try
        {
            await embedder.InvokeAsync(() =>
            {
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

    /// <summary>No-grad, batched reference embeddings of <paramref name="count"/> examples.</summary>
    public Task<EmbeddingBatch> EmbedAsync(byte[] pixels, int count, IReadOnlyList<int[]> tokens) =>
        InvokeAsync(() => _model!.Embed(pixels, count, tokens, _batchSize));

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
