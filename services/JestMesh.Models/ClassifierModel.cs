using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace JestMesh.Models;

/// <summary>The image tower with a class head: per-example cross-entropy, the RHO-LOSS-style setting.</summary>
public sealed class ClassifierModel : nn.Module<Tensor, Tensor>
{
    private readonly ImageTower _image;
    private readonly Linear _head;

    private ClassifierModel(ModelConfig config, Device device) : base(nameof(ClassifierModel))
    {
        Config = config;
        _image = new ImageTower(config);
        _head = nn.Linear(config.Dim, JestMesh.Data.FashionMnist.ClassCount);
        RegisterComponents();
        this.to(device);
    }

    public ModelConfig Config { get; }

    public static ClassifierModel Create(ModelConfig config, Device device)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        return new ClassifierModel(config, device);
    }

    /// <summary>uint8 images [N,1,28,28] → class logits [N, 10].</summary>
    public override Tensor forward(Tensor input)
    {
        using var features = _image.forward(input);
        using var r = F.relu(features);
        return _head.forward(r);
    }

    /// <summary>Mean cross-entropy of a batch (the training loss).</summary>
    public Tensor Loss(Tensor images, Tensor labels)
    {
        using var logits = forward(images);
        return F.cross_entropy(logits, labels);
    }

    /// <summary>No-grad per-example cross-entropy (the learner or reference score for per-example selection).</summary>
    public float[] PerExampleLoss(Tensor images, Tensor labels)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var wasTraining = training;
        eval();
        try
        {
            var logits = forward(images);
            var losses = F.cross_entropy(logits, labels, reduction: nn.Reduction.None);
            return TensorConvert.ToArray(losses);
        }
        finally
        {
            train(wasTraining);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _image.Dispose();
            _head.Dispose();
        }

        base.Dispose(disposing);
    }
}
