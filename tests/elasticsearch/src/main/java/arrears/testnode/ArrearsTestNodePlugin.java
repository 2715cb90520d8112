package arrears.testnode;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.Supplier;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.core.KeywordTokenizer;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenFilter;
import org.apache.lucene.analysis.ngram.NGramTokenizer;
import org.apache.lucene.analysis.pattern.PatternReplaceCharFilter;
import org.apache.lucene.analysis.pattern.PatternTokenizer;
import org.apache.lucene.util.SetOnce;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.regex.Regex;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.CharFilterFactory;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.index.mapper.Mapper;
import org.elasticsearch.index.mapper.MapperParsingException;
import org.elasticsearch.index.mapper.NumberFieldMapper;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.MapperPlugin;
import org.elasticsearch.plugins.Plugin;

/**
 * What the Arrears backend uses that Elastic publishes only inside its full download
 * (its rest-root, analysis-common and mapper-extras modules are not on Maven Central):
 * {@code GET /} ({@link RootInfo}), and the analysis components and field type of the
 * index templates, on Lucene's own classes, which the distribution ships. Each component
 * takes the settings the reference documents and refuses what it refuses.
 *
 * <p>{@code scaled_float} is the one stand-in: its {@code scaling_factor} is required
 * and checked as the reference says, and the field is kept as a {@code double}. Arrears
 * never queries, sorts or sums it (it reads the {@code *_units} longs beside it); it is
 * there for analysts in Kibana.
 */
public final class ArrearsTestNodePlugin extends Plugin implements ActionPlugin, AnalysisPlugin, MapperPlugin {
    private final SetOnce<ClusterService> cluster = new SetOnce<>();

    @Override
    public Collection<?> createComponents(PluginServices services) {
        cluster.set(services.clusterService());
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(
        Settings settings,
        NamedWriteableRegistry registry,
        RestController controller,
        ClusterSettings clusterSettings,
        IndexScopedSettings indexScopedSettings,
        SettingsFilter filter,
        IndexNameExpressionResolver resolver,
        Supplier<DiscoveryNodes> nodes,
        Predicate<NodeFeature> features
    ) {
        return List.of(new RootInfo(cluster.get()));
    }

    @Override
    public Map<String, AnalysisProvider<CharFilterFactory>> getCharFilters() {
        return Map.of("pattern_replace", AnalysisPlugin.requiresAnalysisSettings(ArrearsTestNodePlugin::patternReplace));
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of(
            "pattern", ArrearsTestNodePlugin::pattern,
            "ngram", ArrearsTestNodePlugin::ngram,
            "keyword", ArrearsTestNodePlugin::keyword
        );
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of(
            "asciifolding", ArrearsTestNodePlugin::asciiFolding,
            "edge_ngram", ArrearsTestNodePlugin::edgeNgram
        );
    }

    @Override
    public Map<String, Mapper.TypeParser> getMappers() {
        return Map.of("scaled_float", ArrearsTestNodePlugin::scaledFloat);
    }

    /** Pattern replace character filter: {@code pattern} required, {@code replacement} "" by default. */
    private static CharFilterFactory patternReplace(IndexSettings index, Object env, String name, Settings settings) {
        String source = settings.get("pattern");
        if (source == null) {
            throw new IllegalArgumentException("pattern is missing for [" + name + "] char filter of type 'pattern_replace'");
        }
        Pattern pattern = Regex.compile(source, settings.get("flags"));
        String replacement = settings.get("replacement", "");
        return new CharFilterFactory() {
            public String name() {
                return name;
            }

            public java.io.Reader create(java.io.Reader reader) {
                return new PatternReplaceCharFilter(pattern, replacement, reader);
            }

            public java.io.Reader normalize(java.io.Reader reader) {
                return create(reader);
            }
        };
    }

    /** Pattern tokenizer: {@code pattern} \W+ by default, {@code group} -1 (split) by default. */
    private static TokenizerFactory pattern(IndexSettings index, Object env, String name, Settings settings) {
        Pattern pattern = Regex.compile(settings.get("pattern", "\\W+"), settings.get("flags"));
        int group = settings.getAsInt("group", -1);
        return TokenizerFactory.newFactory(name, () -> new PatternTokenizer(pattern, group));
    }

    /** Keyword tokenizer: the whole input as one term. */
    private static TokenizerFactory keyword(IndexSettings index, Object env, String name, Settings settings) {
        int bufferSize = settings.getAsInt("buffer_size", 256);
        return TokenizerFactory.newFactory(name, () -> new KeywordTokenizer(bufferSize));
    }

    /**
     * N-gram tokenizer: {@code min_gram} 1 and {@code max_gram} 2 by default, their
     * difference at most {@code index.max_ngram_diff}; {@code token_chars} the classes
     * kept in a token (all when empty).
     */
    private static TokenizerFactory ngram(IndexSettings index, Object env, String name, Settings settings) {
        int min = settings.getAsInt("min_gram", NGramTokenizer.DEFAULT_MIN_NGRAM_SIZE);
        int max = settings.getAsInt("max_gram", NGramTokenizer.DEFAULT_MAX_NGRAM_SIZE);
        int allowed = index.getMaxNgramDiff();
        if (max - min > allowed) {
            throw new IllegalArgumentException(
                "The difference between max_gram and min_gram in NGram Tokenizer must be less than or equal to: ["
                    + allowed + "] but was [" + (max - min) + "]. This limit can be set by changing the ["
                    + IndexSettings.MAX_NGRAM_DIFF_SETTING.getKey() + "] index level setting."
            );
        }
        List<String> classes = settings.getAsList("token_chars");
        for (String kind : classes) {
            if (!List.of("letter", "digit", "whitespace", "punctuation", "symbol").contains(kind)) {
                throw new IllegalArgumentException("Unknown token type: '" + kind + "', must be one of [letter, digit, whitespace, punctuation, symbol]");
            }
        }
        return TokenizerFactory.newFactory(name, () -> new NGramTokenizer(min, max) {
            @Override
            protected boolean isTokenChar(int chr) {
                return classes.isEmpty() || classes.stream().anyMatch(kind -> isOf(kind, chr));
            }
        });
    }

    private static boolean isOf(String kind, int chr) {
        int type = Character.getType(chr);
        return switch (kind) {
            case "letter" -> Character.isLetter(chr);
            case "digit" -> Character.isDigit(chr);
            case "whitespace" -> Character.isWhitespace(chr);
            case "punctuation" -> type == Character.CONNECTOR_PUNCTUATION || type == Character.DASH_PUNCTUATION
                || type == Character.START_PUNCTUATION || type == Character.END_PUNCTUATION
                || type == Character.INITIAL_QUOTE_PUNCTUATION || type == Character.FINAL_QUOTE_PUNCTUATION
                || type == Character.OTHER_PUNCTUATION;
            case "symbol" -> type == Character.MATH_SYMBOL || type == Character.CURRENCY_SYMBOL
                || type == Character.MODIFIER_SYMBOL || type == Character.OTHER_SYMBOL;
            default -> false;
        };
    }

    /** ASCII folding token filter: {@code preserve_original} false by default; usable in a normalizer. */
    private static TokenFilterFactory asciiFolding(IndexSettings index, Object env, String name, Settings settings) {
        boolean preserve = settings.getAsBoolean("preserve_original", false);
        return new TokenFilterFactory() {
            public String name() {
                return name;
            }

            public TokenStream create(TokenStream input) {
                return new ASCIIFoldingFilter(input, preserve);
            }

            public TokenStream normalize(TokenStream input) {
                return new ASCIIFoldingFilter(input, false);
            }
        };
    }

    /** Edge n-gram token filter: {@code min_gram} 1 and {@code max_gram} 2 by default. */
    private static TokenFilterFactory edgeNgram(IndexSettings index, Object env, String name, Settings settings) {
        int min = settings.getAsInt("min_gram", 1);
        int max = settings.getAsInt("max_gram", 2);
        boolean preserve = settings.getAsBoolean("preserve_original", false);
        return new TokenFilterFactory() {
            public String name() {
                return name;
            }

            public TokenStream create(TokenStream input) {
                return new EdgeNGramTokenFilter(input, min, max, preserve);
            }
        };
    }

    /** {@code scaled_float}: {@code scaling_factor} required, a finite number above 0. */
    private static Mapper.Builder scaledFloat(String name, Map<String, Object> node, org.elasticsearch.index.mapper.MappingParserContext context) {
        Object factor = node.remove("scaling_factor");
        if (factor == null) {
            throw new MapperParsingException("Failed to parse mapping: Field [scaling_factor] is required");
        }
        double value;
        try {
            value = Double.parseDouble(factor.toString());
        } catch (NumberFormatException e) {
            throw new MapperParsingException("Failed to parse mapping: [scaling_factor] must be a number, got [" + factor + "]");
        }
        if (Double.isFinite(value) == false || value <= 0) {
            throw new IllegalArgumentException("[scaling_factor] must be a positive number, got [" + value + "]");
        }
        return NumberFieldMapper.NumberType.DOUBLE.parser().parse(name, node, context);
    }
}
