namespace JestMesh.Data;

/// <summary>Caption vocabulary and generator: class, brightness and size buckets through varied templates and synonyms.</summary>
public static class Captions
{
    /// <summary>Token 0 pads captions to <see cref="MaxTokens"/>; it never carries meaning.</summary>
    public const int PadToken = 0;

    // Thresholds are the 33rd/66th percentiles of the training set, so each bucket holds about a third.
    private const int OnThreshold = 30;
    private const double DarkBelow = 145, BrightFrom = 184;
    private const double SmallBelow = 0.357, LargeFrom = 0.534;

    private static readonly string[][] ClassSynonyms =
    [
        ["t-shirt", "tee", "top"],
        ["trousers", "pants", "slacks"],
        ["pullover", "sweater", "jumper"],
        ["dress", "gown", "frock"],
        ["coat", "jacket", "overcoat"],
        ["sandal", "flip-flop", "strappy sandal"],
        ["shirt", "blouse", "button-up shirt"],
        ["sneaker", "trainer", "running shoe"],
        ["bag", "handbag", "purse"],
        ["ankle boot", "boot", "bootie"],
    ];

    private static readonly string[][] BrightnessSynonyms =
    [
        ["dark", "dim", "shadowy"],
        ["grey", "muted", "mid-tone"],
        ["bright", "light", "pale"],
    ];

    private static readonly string[][] SizeSynonyms =
    [
        ["small", "compact", "slim"],
        ["medium", "regular", "mid-size"],
        ["large", "big", "wide"],
    ];

    // {c} class, {b} brightness, {s} size.
    private static readonly string[] Templates =
    [
        "a photo of a {s} {b} {c}",
        "a {b} {c}",
        "{s} {c} , {b}",
        "picture of a {b} {s} {c}",
        "this is a {c} that looks {b} and {s}",
        "a {s} {c} on a plain background",
        "an image showing a {b} {c}",
        "{b} {s} {c}",
        "a {c}",
        "close-up of a {s} {c} in {b} tones",
    ];

    private static readonly string[] Words = BuildVocabulary();
    private static readonly Dictionary<string, int> TokenOf = Words.Select((w, i) => (w, i)).ToDictionary(p => p.w, p => p.i);
    private static readonly (char Kind, int Value)[] Meaning = BuildMeaning();

    /// <summary>Number of token ids, the pad token included.</summary>
    public static int VocabularySize => Words.Length;

    /// <summary>Longest caption in tokens; every caption is padded to this length.</summary>
    public static int MaxTokens { get; } = ComputeMaxTokens();

    public static int BrightnessBucket(ReadOnlySpan<byte> image)
    {
        long sum = 0;
        var on = 0;
        foreach (var p in image)
        {
            if (p > OnThreshold)
            {
                sum += p;
                on++;
            }
        }

        var mean = on == 0 ? 0 : (double)sum / on;
        return mean < DarkBelow ? 0 : mean < BrightFrom ? 1 : 2;
    }

    public static int SizeBucket(ReadOnlySpan<byte> image)
    {
        var on = 0;
        foreach (var p in image)
        {
            if (p > OnThreshold)
            {
                on++;
            }
        }

        var share = (double)on / image.Length;
        return share < SmallBelow ? 0 : share < LargeFrom ? 1 : 2;
    }

    /// <summary>A caption for one image: template and synonyms drawn from <paramref name="random"/>, padded to <see cref="MaxTokens"/>.</summary>
    public static int[] Describe(ReadOnlySpan<byte> image, int label, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if ((uint)label >= (uint)ClassSynonyms.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(label), label, $"label must be in 0..{ClassSynonyms.Length - 1}");
        }

        var template = Templates[random.Next(Templates.Length)];
        var c = Pick(ClassSynonyms[label], random);
        var b = Pick(BrightnessSynonyms[BrightnessBucket(image)], random);
        var s = Pick(SizeSynonyms[SizeBucket(image)], random);
        return Encode(template.Replace("{c}", c).Replace("{b}", b).Replace("{s}", s));
    }

    /// <summary>Zero-shot prompts for one class ("a photo of a X" for every synonym X).</summary>
    public static IReadOnlyList<int[]> ClassPrompts(int label)
    {
        if ((uint)label >= (uint)ClassSynonyms.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(label), label, $"label must be in 0..{ClassSynonyms.Length - 1}");
        }

        return ClassSynonyms[label].Select(name => Encode($"a photo of a {name}")).ToArray();
    }

    /// <summary>Encodes space-separated words of the fixed vocabulary, padded to <see cref="MaxTokens"/>.</summary>
    public static int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length > MaxTokens)
        {
            throw new ArgumentException($"caption '{text}' has {words.Length} words, more than {MaxTokens}.", nameof(text));
        }

        var tokens = new int[MaxTokens];
        for (var i = 0; i < words.Length; i++)
        {
            if (!TokenOf.TryGetValue(words[i], out var id))
            {
                throw new ArgumentException($"word '{words[i]}' in '{text}' is not in the caption vocabulary.", nameof(text));
            }

            tokens[i] = id;
        }

        return tokens;
    }

    /// <summary>
    /// The built-in learner's view of any caption: its words that are in the vocabulary (lower-cased, surrounding
    /// punctuation stripped), in order, the first <see cref="MaxTokens"/> of them, padded. A caption with no such word
    /// gives only padding. The built-in pool's captions give exactly <see cref="Encode"/>'s ids.
    /// </summary>
    /// <param name="text">The caption.</param>
    /// <param name="dropped">Words left out: outside the vocabulary, or past <see cref="MaxTokens"/>.</param>
    public static int[] EncodeKnownWords(string text, out int dropped)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new int[MaxTokens];
        var count = 0;
        dropped = 0;
        foreach (var raw in text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            // The word as written first (the vocabulary has "," as a word), then lower-cased without surrounding punctuation.
            var word = TokenOf.ContainsKey(raw) ? raw : raw.Trim(WordPunctuation).ToLowerInvariant();
            if (word.Length == 0)
            {
                continue;
            }

            if (count < MaxTokens && TokenOf.TryGetValue(word, out var id))
            {
                tokens[count++] = id;
            }
            else
            {
                dropped++;
            }
        }

        return tokens;
    }

    private static readonly char[] WordPunctuation = ['.', ',', ';', ':', '!', '?', '"', '\'', '(', ')', '[', ']', '{', '}'];

    public static string Decode(ReadOnlySpan<int> tokens)
    {
        var words = new List<string>(tokens.Length);
        foreach (var t in tokens)
        {
            if (t != PadToken)
            {
                words.Add(Words[t]);
            }
        }

        return string.Join(' ', words);
    }

    /// <summary>
    /// What a caption says: its class, and its brightness and size buckets where the template mentions them (−1 otherwise).
    /// A caption is a correct description of an image when all of these agree with the image.
    /// </summary>
    public static (int Label, int Brightness, int Size) Attributes(ReadOnlySpan<int> tokens)
    {
        int label = -1, brightness = -1, size = -1;
        foreach (var t in tokens)
        {
            if (t == PadToken)
            {
                continue;
            }

            var (kind, value) = Meaning[t];
            switch (kind)
            {
                case 'c':
                    label = value;
                    break;
                case 'b':
                    brightness = value;
                    break;
                case 's':
                    size = value;
                    break;
                default:
                    break;
            }
        }

        return (label, brightness, size);
    }

    private static string Pick(string[] options, Random random) => options[random.Next(options.Length)];

    // Every synonym's words belong to exactly one class or bucket (checked here), so a caption's tokens say what it describes.
    private static (char Kind, int Value)[] BuildMeaning()
    {
        var meaning = new (char Kind, int Value)[Words.Length];
        void Mark(string[][] groups, char kind)
        {
            for (var g = 0; g < groups.Length; g++)
            {
                foreach (var word in groups[g].SelectMany(s => s.Split(' ')))
                {
                    var t = TokenOf[word];
                    if (meaning[t].Kind != default && meaning[t] != (kind, g))
                    {
                        throw new InvalidOperationException($"caption word '{word}' means two things.");
                    }

                    meaning[t] = (kind, g);
                }
            }
        }

        Mark(ClassSynonyms, 'c');
        Mark(BrightnessSynonyms, 'b');
        Mark(SizeSynonyms, 's');
        return meaning;
    }

    private static string[] BuildVocabulary()
    {
        var all = Templates.Select(t => t.Replace("{c}", " ").Replace("{b}", " ").Replace("{s}", " "))
            .Concat(ClassSynonyms.SelectMany(s => s)).Concat(BrightnessSynonyms.SelectMany(s => s))
            .Concat(SizeSynonyms.SelectMany(s => s)).Append("a photo of a")
            .SelectMany(t => t.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        return ["<pad>", .. all];
    }

    private static int ComputeMaxTokens()
    {
        static int Longest(string[][] groups) => groups.SelectMany(g => g).Max(w => w.Split(' ').Length);
        return Templates.Max(t =>
        {
            var parts = t.Split(' ');
            return parts.Sum(p => p switch
            {
                "{c}" => Longest(ClassSynonyms),
                "{b}" => Longest(BrightnessSynonyms),
                "{s}" => Longest(SizeSynonyms),
                _ => 1,
            });
        });
    }
}
