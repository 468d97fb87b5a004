namespace JestMesh.Protos.V1;

/// <summary>Checks of a received super-batch that no retry can fix; failures name the field and example.</summary>
public sealed partial class SuperBatch
{
    /// <summary>Default image geometry (Fashion-MNIST) when an example leaves it at 0.</summary>
    public const int DefaultImageSide = 28;

    /// <summary>
    /// Throws <see cref="InvalidDataException"/> when the super-batch cannot be scored: no examples,
    /// an image of the wrong size, a token outside the vocabulary or too many tokens, a repeated id.
    /// </summary>
    public void Validate(int vocabularySize, int maxTokens)
    {
        if (string.IsNullOrEmpty(Id))
        {
            throw new InvalidDataException("super-batch has no id.");
        }
        if (Examples.Count == 0)
        {
            throw new InvalidDataException($"super-batch {Id} has no examples.");
        }
        var ids = new HashSet<long>();
        for (var i = 0; i < Examples.Count; i++)
        {
            var example = Examples[i];
            var height = example.ImageHeight == 0 ? DefaultImageSide : example.ImageHeight;
            var width = example.ImageWidth == 0 ? DefaultImageSide : example.ImageWidth;
            if (height != DefaultImageSide || width != DefaultImageSide)
            {
                throw new InvalidDataException($"super-batch {Id} examples[{i}] (id {example.Id}): image is {height}x{width}, the reference model takes {DefaultImageSide}x{DefaultImageSide}.");
            }
            if (example.Image.Length != height * width)
            {
                throw new InvalidDataException($"super-batch {Id} examples[{i}] (id {example.Id}): image has {example.Image.Length} bytes, expected {height * width}.");
            }
            if (example.CaptionTokens.Count > maxTokens)
            {
                throw new InvalidDataException($"super-batch {Id} examples[{i}] (id {example.Id}): caption has {example.CaptionTokens.Count} tokens, at most {maxTokens} allowed.");
            }
            foreach (var token in example.CaptionTokens)
            {
                if (token < 0 || token >= vocabularySize)
                {
                    throw new InvalidDataException($"super-batch {Id} examples[{i}] (id {example.Id}): caption token {token} is outside the vocabulary [0, {vocabularySize}).");
                }
            }
            if (!ids.Add(example.Id))
            {
                throw new InvalidDataException($"super-batch {Id} examples[{i}]: id {example.Id} appears twice.");
            }
        }
    }
}

/// <summary>Checks of a received scored super-batch that no retry can fix.</summary>
public sealed partial class ScoredSuperBatch
{
    /// <summary>
    /// Decodes and checks the reference embeddings: both float32 [N, d] with N = examples and the
    /// same d, every value and α, β finite. Throws <see cref="InvalidDataException"/> naming the field.
    /// </summary>
    public (float[] Image, float[] Text, int Dim) ValidatedEmbeddings()
    {
        var n = Examples.Count;
        if (n == 0)
        {
            throw new InvalidDataException($"scored super-batch {Id} has no examples.");
        }
        if (ReferenceImageEmbeddings is null || ReferenceTextEmbeddings is null)
        {
            throw new InvalidDataException($"scored super-batch {Id} lacks reference_{(ReferenceImageEmbeddings is null ? "image" : "text")}_embeddings.");
        }
        var image = ReferenceImageEmbeddings.ToFloat32($"scored super-batch {Id} reference_image_embeddings", n, -1);
        var dim = (int)ReferenceImageEmbeddings.Shape[1];
        var text = ReferenceTextEmbeddings.ToFloat32($"scored super-batch {Id} reference_text_embeddings", n, dim);
        if (dim <= 0)
        {
            throw new InvalidDataException($"scored super-batch {Id}: embedding width is {dim}.");
        }
        if (!Tensor.AllFinite(image) || !Tensor.AllFinite(text))
        {
            throw new InvalidDataException($"scored super-batch {Id}: reference_{(Tensor.AllFinite(image) ? "text" : "image")}_embeddings contain NaN or infinity.");
        }
        if (!float.IsFinite(ReferenceAlpha) || !float.IsFinite(ReferenceBeta))
        {
            throw new InvalidDataException($"scored super-batch {Id}: reference α = {ReferenceAlpha}, β = {ReferenceBeta} must be finite.");
        }
        // Both contrastive sources compute u = α⟨img, txt⟩ in float32 (the softmax one refuses a bound that overflows it).
        var bound = JestMesh.Curation.ScoreSources.SoftmaxLogitBound(new JestMesh.Curation.ContrastiveEmbeddings(image, text, n, dim, ReferenceAlpha, ReferenceBeta));
        if (!(bound <= float.MaxValue))
        {
            throw new InvalidDataException($"scored super-batch {Id}: reference_alpha {ReferenceAlpha} makes |α|·max‖img‖·max‖txt‖ = {bound:G4}, which overflows float32.");
        }
        return (image, text, dim);
    }

    /// <summary>
    /// The reference's InfoNCE losses over this super-batch when Scoring shipped them (null when absent: an older producer or
    /// Scoring:ReferenceInfoNce off), checked: N values per direction, all finite. Throws <see cref="InvalidDataException"/> naming the field.
    /// </summary>
    public JestMesh.Curation.InfoNceLosses? ValidatedReferenceInfoNce()
    {
        if (ReferenceInfoNce is null)
        {
            return null;
        }
        var n = Examples.Count;
        var imageToText = ReferenceInfoNce.ImageToText;
        var textToImage = ReferenceInfoNce.TextToImage;
        if (imageToText.Count != n || textToImage.Count != n)
        {
            throw new InvalidDataException(
                $"scored super-batch {Id}: reference_info_nce has {imageToText.Count} image_to_text and {textToImage.Count} text_to_image values for {n} examples.");
        }
        for (var i = 0; i < n; i++)
        {
            if (!double.IsFinite(imageToText[i]) || !double.IsFinite(textToImage[i]))
            {
                throw new InvalidDataException($"scored super-batch {Id}: reference_info_nce of examples[{i}] is NaN or infinite.");
            }
        }
        return new JestMesh.Curation.InfoNceLosses([.. imageToText], [.. textToImage]);
    }
}

/// <summary>Conversion of the learning core's losses to the wire.</summary>
public sealed partial class ReferenceInfoNce
{
    public static ReferenceInfoNce From(JestMesh.Curation.InfoNceLosses losses)
    {
        ArgumentNullException.ThrowIfNull(losses);
        var message = new ReferenceInfoNce();
        message.ImageToText.Add(losses.ImageToText.ToArray());
        message.TextToImage.Add(losses.TextToImage.ToArray());
        return message;
    }
}
