using JestMesh.Data;

namespace JestMesh.Models;

/// <summary>Sizes of the dual encoder; saved with every checkpoint and checked on load.</summary>
public sealed record ModelConfig
{
    public const string SiglipArchitecture = "siglip-cnn2-embbag/v1";
    public const string ClassifierArchitecture = "classifier-cnn2/v1";

    /// <summary>Shared embedding width d of both towers.</summary>
    public int Dim { get; init; } = 64;

    public int Conv1Channels { get; init; } = 16;

    public int Conv2Channels { get; init; } = 32;

    public int ImageHidden { get; init; } = 128;

    public int WordDim { get; init; } = 128;

    public int VocabularySize { get; init; } = Captions.VocabularySize;

    public int MaxTokens { get; init; } = Captions.MaxTokens;

    /// <summary>SigLIP's initial temperature α = exp(log t) and bias β (paper: t = 10, β = −10).</summary>
    public float InitialLogTemperature { get; init; } = MathF.Log(10f);

    public float InitialBias { get; init; } = -10f;

    public void Validate()
    {
        static void Positive(int value, string name)
        {
            if (value <= 0)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive.");
            }
        }

        Positive(Dim, nameof(Dim));
        Positive(Conv1Channels, nameof(Conv1Channels));
        Positive(Conv2Channels, nameof(Conv2Channels));
        Positive(ImageHidden, nameof(ImageHidden));
        Positive(WordDim, nameof(WordDim));
        Positive(VocabularySize, nameof(VocabularySize));
        Positive(MaxTokens, nameof(MaxTokens));
    }
}
