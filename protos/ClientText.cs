using System.Globalization;
using System.Text;

namespace JestMesh.Protos;

/// <summary>
/// Client-supplied text on its way into a status message or a log line: bounded (a 10 kB job id
/// must not become a 10 kB status, which the client would see as RESOURCE_EXHAUSTED) and with
/// control characters escaped (no NUL bytes or terminal escapes in logs).
/// </summary>
public static class ClientText
{
    /// <summary>Characters of client text kept in a message.</summary>
    public const int MaxChars = 64;

    /// <summary>
    /// <paramref name="text"/> in single quotes, at most <see cref="MaxChars"/> of its characters,
    /// control characters as \n, \0, \u001b...; longer text ends in "…" and its full length.
    /// </summary>
    public static string Quote(string? text)
    {
        if (text is null)
        {
            return "(none)";
        }
        var builder = new StringBuilder(Math.Min(text.Length, MaxChars) + 24);
        builder.Append('\'');
        var shown = Math.Min(text.Length, MaxChars);
        for (var i = 0; i < shown; i++)
        {
            var c = text[i];
            switch (c)
            {
                case '\n': builder.Append("\\n"); break;
                case '\r': builder.Append("\\r"); break;
                case '\t': builder.Append("\\t"); break;
                case '\0': builder.Append("\\0"); break;
                case '\\': builder.Append("\\\\"); break;
                case '\'': builder.Append("\\'"); break;
                default:
                    if (char.IsControl(c) || char.IsSurrogate(c) || c is '\u2028' or '\u2029')
                    {
                        builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        builder.Append(c);
                    }
                    break;
            }
        }
        builder.Append('\'');
        if (text.Length > shown)
        {
            builder.Append("… (").Append(text.Length.ToString(CultureInfo.InvariantCulture)).Append(" chars)");
        }
        return builder.ToString();
    }
}
