using Google.Protobuf;
using JestMesh.Protos.V1;

namespace JestMesh.Protos;

/// <summary>
/// <c>run-summary.json</c>, the trainer's public record of its run (<see cref="RunSummary"/>, protos/jestmesh/v1/run_summary.proto):
/// protobuf's JSON mapping (lowerCamelCase field names), written by the trainer to its checkpoint directory and
/// replaced atomically after every evaluation and at the end. The trainer writes it and every reader (the demo,
/// scripts, dashboards) reads it through this class only, so both sides agree on the name, format and version.
/// </summary>
public static class RunSummaryFile
{
    /// <summary>The file's name inside the trainer's checkpoint directory.</summary>
    public const string FileName = "run-summary.json";

    /// <summary>The <see cref="RunSummary.SchemaVersion"/> this code writes and reads.</summary>
    public const int SchemaVersion = 1;

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true).WithIndentation());

    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true));

    /// <summary>Path of the summary of the trainer whose checkpoint directory is <paramref name="checkpointDirectory"/>.</summary>
    public static string PathIn(string checkpointDirectory) => Path.Combine(checkpointDirectory, FileName);

    /// <summary>
    /// Writes <paramref name="summary"/> to <paramref name="path"/> atomically (a temporary file in the same
    /// directory, then a rename over the old one): a reader sees the previous summary or this one, never a part.
    /// A summary with schema version 0 (unset) is written as version <see cref="SchemaVersion"/>.
    /// </summary>
    public static void Write(string path, RunSummary summary)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(summary);
        if (summary.SchemaVersion is not (0 or SchemaVersion))
        {
            throw new ArgumentException($"run summary schema version {summary.SchemaVersion}: this code writes version {SchemaVersion} only.", nameof(summary));
        }

        var copy = summary.Clone();
        copy.SchemaVersion = SchemaVersion;
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = $"{full}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllText(tmp, Formatter.Format(copy) + "\n");
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp))
            {
                File.Delete(tmp);
            }
        }
    }

    /// <summary>
    /// The summary at <paramref name="path"/>, or null when there is none yet (a trainer writes its first one after its
    /// first evaluation). Throws <see cref="InvalidDataException"/> naming the file when it is not a run summary or has a
    /// schema version other than <see cref="SchemaVersion"/>. Fields this code does not know are ignored.
    /// </summary>
    public static RunSummary? TryRead(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }

        RunSummary summary;
        try
        {
            summary = Parser.Parse<RunSummary>(text);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"{path} is not a run summary (jestmesh.v1.RunSummary as JSON): {e.Message}", e);
        }
        catch (InvalidJsonException e)
        {
            throw new InvalidDataException($"{path} is not a run summary (jestmesh.v1.RunSummary as JSON): {e.Message}", e);
        }

        if (summary.SchemaVersion != SchemaVersion)
        {
            throw new InvalidDataException(
                $"{path} has run summary schema version {summary.SchemaVersion}; this program reads version {SchemaVersion} only " +
                "(the trainer that wrote it is newer or older than this reader: use matching versions).");
        }

        return summary;
    }
}
