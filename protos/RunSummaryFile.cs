using Google.Protobuf;

namespace JestMesh.Protos.V1;

/// <summary>run-summary.json: a <see cref="RunSummary"/> in protobuf's JSON mapping, replaced atomically.</summary>
public static class RunSummaryFile
{
    /// <summary>The file name inside a trainer's checkpoint directory.</summary>
    public const string FileName = "run-summary.json";

    public const int SchemaVersion = 1;

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithIndentation().WithFormatDefaultValues(true));
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true));

    /// <summary>Writes <paramref name="summary"/> to <paramref name="path"/> through a temporary file and a rename, so readers never see half a file.</summary>
    public static void Write(string path, RunSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, Formatter.Format(summary));
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>The summary at <paramref name="path"/>, or null when there is none yet.</summary>
    /// <exception cref="InvalidDataException">Not a run summary, or a schema version this reader does not know.</exception>
    public static RunSummary? TryRead(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        RunSummary summary;
        try
        {
            summary = Parser.Parse<RunSummary>(File.ReadAllText(path));
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new InvalidDataException($"{path} is not a run summary: {ex.Message}", ex);
        }
        if (summary.SchemaVersion != SchemaVersion)
        {
            throw new InvalidDataException($"{path} has schema_version {summary.SchemaVersion}; this reader knows {SchemaVersion}.");
        }
        return summary;
    }
}
