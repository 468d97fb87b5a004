using JestMesh.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace JestMesh.Models;

/// <summary>Embeddings of one model over a list of examples: N×d row-major, L2-normalised, plus α, β.</summary>
public sealed record EmbeddingBatch(float[] Image, float[] Text, int Count, int Dim, float Alpha, float Beta);

/// <summary>The small CNN image tower shared by the SigLIP model and the classifier.</summary>
public sealed class ImageTower : nn.Module<Tensor, Tensor>
{
    // Fashion-MNIST pixel mean and standard deviation (of x/255) over the training set.
    private const double PixelMean = 0.2860, PixelStd = 0.3530;

    private readonly Conv2d _conv1;
    private readonly Conv2d _conv2;
    private readonly Linear _hidden;
    private readonly Linear _out;

    public ImageTower(ModelConfig config) : base(nameof(ImageTower))
    {
        ArgumentNullException.ThrowIfNull(config);
        _conv1 = nn.Conv2d(1, config.Conv1Channels, 3, padding: 1);
        _conv2 = nn.Conv2d(config.Conv1Channels, config.Conv2Channels, 3, padding: 1);
        _hidden = nn.Linear(config.Conv2Channels * 7 * 7, config.ImageHidden);
        _out = nn.Linear(config.ImageHidden, config.Dim);
        RegisterComponents();
    }

    /// <summary>Side of the feature map the hidden layer reads (28 → 14 → 7 after two 2×2 max-pools).</summary>
    public const int FeatureSide = 7;

    /// <summary>
    /// uint8 images [N,1,S,S] → unnormalised features [N, d]. At S = 28 the feature map is 7×7 and goes to
    /// the hidden layer as it always did; at a lower S (e.g. 14, for cheap scoring) the same convolutions
    /// run on the smaller image and the smaller map is resized to 7×7 by adaptive average pooling
    /// (resolution-agnostic head; each cell of a 3×3 map is repeated over the 7×7 cells it covers).
    /// </summary>
    public override Tensor forward(Tensor input)
    {
        using var x0 = input.to_type(ScalarType.Float32).div_(255.0).sub_(PixelMean).div_(PixelStd);
        using var c1 = _conv1.forward(x0);
        using var r1 = F.relu(c1);
        using var p1 = F.max_pool2d(r1, 2);
        using var c2 = _conv2.forward(p1);
        using var r2 = F.relu(c2);
        using var p2 = F.max_pool2d(r2, 2);
        using var flat = Flatten(p2);
        using var h = _hidden.forward(flat);
        using var rh = F.relu(h);
        return _out.forward(rh);
    }

    private static Tensor Flatten(Tensor map)
    {
        if (map.shape[2] == FeatureSide && map.shape[3] == FeatureSide)
        {
            return map.flatten(1);
        }

        using var resized = F.adaptive_avg_pool2d(map, [FeatureSide, FeatureSide]);
        return resized.flatten(1);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _conv1.Dispose();
            _conv2.Dispose();
            _hidden.Dispose();
            _out.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>SigLIP dual encoder: CNN image tower + embedding-bag text tower to d, L2-normalised, learned α (as log t) and β.</summary>
public sealed class SiglipModel : nn.Module<Tensor, Tensor, (Tensor Image, Tensor Text)>
{
    private readonly ImageTower _image;
    private readonly EmbeddingBag _words;
    private readonly Linear _textOut;
    private readonly Parameter _logTemperature;
    private readonly Parameter _bias;

    private SiglipModel(ModelConfig config, Device device) : base(nameof(SiglipModel))
    {
        Config = config;
        _image = new ImageTower(config);
        _words = nn.EmbeddingBag(config.VocabularySize, config.WordDim, mode: EmbeddingBagMode.Mean, padding_index: Captions.PadToken);
        _textOut = nn.Linear(config.WordDim, config.Dim);
        _logTemperature = new Parameter(tensor(config.InitialLogTemperature));
        _bias = new Parameter(tensor(config.InitialBias));
        RegisterComponents();
        this.to(device);
        Device = device;
    }

    public ModelConfig Config { get; }

    public Device Device { get; }

    /// <summary>Temperature α = exp(log t).</summary>
    public float Alpha
    {
        get
        {
            using var _ = no_grad();
            using var alpha = _logTemperature.exp();
            return alpha.item<float>();
        }
    }

    public float Beta
    {
        get
        {
            using var _ = no_grad();
            return _bias.item<float>();
        }
    }

    public static SiglipModel Create(ModelConfig config, Device device)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(device);
        config.Validate();
        return new SiglipModel(config, device);
    }

    /// <summary>uint8 images [N,1,28,28] and int64 tokens [N,T] → L2-normalised embeddings, each [N, d].</summary>
    public override (Tensor Image, Tensor Text) forward(Tensor images, Tensor tokens) => (EncodeImages(images), EncodeText(tokens));

    public Tensor EncodeImages(Tensor images)
    {
        using var features = _image.forward(images);
        return F.normalize(features, p: 2, dim: 1);
    }

    public Tensor EncodeText(Tensor tokens)
    {
        using var bag = _words.forward(tokens, null, null);
        using var features = _textOut.forward(bag);
        return F.normalize(features, p: 2, dim: 1);
    }

    /// <summary>Sigmoid pairwise loss of a batch: Σ_ij −log σ(y_ij(α⟨x_i, t_j⟩ + β)) / b, y_ii = 1, y_ij = −1.</summary>
    public Tensor Loss(Tensor images, Tensor tokens)
    {
        var (img, txt) = forward(images, tokens);
        using (img)
        using (txt)
        {
            return SigmoidLoss(img, txt, _logTemperature, _bias);
        }
    }

    /// <summary>The loss formula alone, exposed so tests can check it against a term-by-term sum.</summary>
    public static Tensor SigmoidLossForTests(Tensor img, Tensor txt, Tensor logTemperature, Tensor bias) => SigmoidLoss(img, txt, logTemperature, bias);

    internal static Tensor SigmoidLoss(Tensor img, Tensor txt, Tensor logTemperature, Tensor bias)
    {
        var n = img.shape[0];
        using var sims = img.matmul(txt.t());
        using var alpha = logTemperature.exp();
        using var logits = sims.mul(alpha).add_(bias);
        using var eye = torch.eye(n, dtype: ScalarType.Float32, device: img.device);
        using var signs = eye.mul(2.0).sub_(1.0);
        using var signed = logits.mul(signs);
        using var terms = F.logsigmoid(signed);
        using var total = terms.sum();
        return total.neg().div_(n);
    }

    /// <summary>No-grad, batched embeddings of tensors already on the model's device.</summary>
    public (Tensor Image, Tensor Text) EmbedTensors(Tensor images, Tensor tokens, int batchSize = 512)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(tokens);
        using var _ = no_grad();
        var wasTraining = training;
        eval();
        try
        {
            var n = images.shape[0];
            if (n <= batchSize)
            {
                return forward(images, tokens);
            }

            var imageParts = new List<Tensor>();
            var textParts = new List<Tensor>();
            using var scope = NewDisposeScope();
            for (long start = 0; start < n; start += batchSize)
            {
                var len = Math.Min(batchSize, n - start);
                using var imgSlice = images.narrow(0, start, len);
                using var tokSlice = tokens.narrow(0, start, len);
                var (img, txt) = forward(imgSlice, tokSlice);
                imageParts.Add(img);
                textParts.Add(txt);
            }

            var image = cat(imageParts, 0);
            var text = cat(textParts, 0);
            return scope.MoveToOuter(image, text);
        }
        finally
        {
            train(wasTraining);
        }
    }

    /// <summary>No-grad embeddings of images only (evaluation).</summary>
    public Tensor EmbedImages(Tensor images, int batchSize = 1024)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var _ = no_grad();
        var wasTraining = training;
        eval();
        try
        {
            using var scope = NewDisposeScope();
            var parts = new List<Tensor>();
            for (long start = 0; start < images.shape[0]; start += batchSize)
            {
                using var slice = images.narrow(0, start, Math.Min(batchSize, images.shape[0] - start));
                parts.Add(EncodeImages(slice));
            }

            return scope.MoveToOuter(cat(parts, 0));
        }
        finally
        {
            train(wasTraining);
        }
    }

    /// <summary>No-grad embeddings of token rows only (evaluation, prompts).</summary>
    public Tensor EmbedText(Tensor tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        using var _ = no_grad();
        return EncodeText(tokens);
    }

    /// <summary>
    /// No-grad, batched embeddings for raw inputs (pixels: count*784 bytes; tokens per example). A
    /// <paramref name="resolution"/> below 28 first downsamples every image by averaging R×R blocks
    /// (<see cref="TensorConvert.Downsample"/>) and embeds the small images (cheap scoring).
    /// </summary>
    public EmbeddingBatch Embed(ReadOnlySpan<byte> pixels, int count, IReadOnlyList<int[]> tokens, int batchSize = 512, int resolution = ImageSet.Side)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (tokens.Count != count)
        {
            throw new ArgumentException($"tokens has {tokens.Count} rows for {count} images.", nameof(tokens));
        }

        using var scope = NewDisposeScope();
        var full = TensorConvert.Images(pixels, count);
        var images = (resolution == ImageSet.Side ? full : TensorConvert.Downsample(full, resolution)).to(Device);
        var tok = TensorConvert.Tokens(tokens, Config.MaxTokens).to(Device);
        var (img, txt) = EmbedTensors(images, tok, batchSize);
        return new EmbeddingBatch(TensorConvert.ToArray(img), TensorConvert.ToArray(txt), count, Config.Dim, Alpha, Beta);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _image.Dispose();
            _words.Dispose();
            _textOut.Dispose();
            _logTemperature.Dispose();
            _bias.Dispose();
        }

        base.Dispose(disposing);
    }
}
