// safetensors checkpoints: bit-exact round trips, PyG's layouts (the transposed
// weights), the reference implementation's exact bytes, and malformed files
// (every one a gcn::DataError naming the file and the problem, never a crash
// or a huge allocation).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "gcn/train/checkpoint.hpp"
#include "gcn/error.hpp"
#include "test_util.hpp"

namespace gcn {
namespace {

using namespace std::string_literals;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kName = "ckpt.safetensors";

std::string le64(uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string f32s(const std::vector<float>& values) {
  std::string s(values.size() * 4, '\0');
  std::memcpy(s.data(), values.data(), s.size());  // the test hosts are little-endian
  return s;
}

std::string file_bytes(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

// The message of the DataError that parsing `bytes` throws ("" and a failure if none).
std::string parse_error(const std::string& bytes) {
  try {
    parse_safetensors(bytes, kName);
  } catch (const DataError& e) {
    return e.what();
  }
  ADD_FAILURE() << "parse_safetensors accepted a malformed file";
  return "";
}

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

void expect_bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(bits(a[i]), bits(b[i])) << "at " << i;
}

// A flat parameter array whose every value is distinct (its index, offset).
std::vector<float> iota_params(const ModelShape& shape, float offset = 0.0f) {
  std::vector<float> flat(static_cast<std::size_t>(ParamLayout(shape).total));
  for (std::size_t i = 0; i < flat.size(); ++i) flat[i] = static_cast<float>(i) + offset;
  return flat;
}

// --- Known answers -----------------------------------------------------------

// Written by the reference implementation (python safetensors 0.8.0):
//   save({"weight": [[1, -2, 0.5], [3, 0, -0.25]], "bias": [1.5, -1]}, metadata={"epoch": "3"})
const std::string kReferenceHeader =
    R"({"__metadata__":{"epoch":"3"},"bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
    R"("weight":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]}}     )";
const std::string kReferenceBytes =
    "\x98\0\0\0\0\0\0\0"s + kReferenceHeader +
    "\x00\x00\xc0\x3f\x00\x00\x80\xbf\x00\x00\x80\x3f\x00\x00\x00\xc0"
    "\x00\x00\x00\x3f\x00\x00\x40\x40\x00\x00\x00\x00\x00\x00\x80\xbe"s;

TEST(SafetensorsKnownAnswer, ParsesTheReferenceImplementationsBytes) {
  ASSERT_EQ(kReferenceHeader.size(), 152u);
  const SafetensorsFile file = parse_safetensors(kReferenceBytes, kName);
  EXPECT_EQ(file.metadata, (std::map<std::string, std::string>{{"epoch", "3"}}));
  ASSERT_EQ(file.tensors.size(), 2u);
  const Tensor32* bias = file.find("bias");
  const Tensor32* weight = file.find("weight");
  ASSERT_NE(bias, nullptr);
  ASSERT_NE(weight, nullptr);
  EXPECT_EQ(file.find("nope"), nullptr);
  EXPECT_THAT(bias->shape, ElementsAre(2));
  EXPECT_THAT(bias->data, ElementsAre(1.5f, -1.0f));
  EXPECT_THAT(weight->shape, ElementsAre(2, 3));
  EXPECT_THAT(weight->data, ElementsAre(1.0f, -2.0f, 0.5f, 3.0f, 0.0f, -0.25f));
}

TEST(SafetensorsKnownAnswer, SerializesToTheReferenceImplementationsBytes) {
  SafetensorsFile file;
  file.metadata = {{"epoch", "3"}};
  // Given out of name order: the writer sorts, as the reference does.
  file.tensors.push_back({"weight", {2, 3}, {1.0f, -2.0f, 0.5f, 3.0f, 0.0f, -0.25f}});
  file.tensors.push_back({"bias", {2}, {1.5f, -1.0f}});
  EXPECT_EQ(serialize_safetensors(file), kReferenceBytes);
}

TEST(SafetensorsKnownAnswer, HandBuiltScalarAndEmptyTensors) {
  // Unpadded header, no metadata, a scalar, a zero-size tensor and a vector.
  const std::string header =
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("z":{"dtype":"F32","shape":[0,7],"data_offsets":[4,4]},)"
      R"("v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  const SafetensorsFile file =
      parse_safetensors(file_bytes(header, f32s({42.0f, -1.0f, 2.0f})), kName);
  EXPECT_TRUE(file.metadata.empty());
  ASSERT_EQ(file.tensors.size(), 3u);
  // Read back in name order.
  EXPECT_EQ(file.tensors[0].name, "s");
  EXPECT_EQ(file.tensors[1].name, "v");
  EXPECT_EQ(file.tensors[2].name, "z");
  EXPECT_TRUE(file.tensors[0].shape.empty());
  EXPECT_THAT(file.tensors[0].data, ElementsAre(42.0f));
  EXPECT_THAT(file.tensors[1].data, ElementsAre(-1.0f, 2.0f));
  EXPECT_THAT(file.tensors[2].shape, ElementsAre(0, 7));
  EXPECT_TRUE(file.tensors[2].data.empty());
}

TEST(SafetensorsKnownAnswer, AcceptsSpacePaddingAndAnEmptyFile) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const SafetensorsFile padded =
      parse_safetensors(file_bytes(header + "         ", f32s({7.0f})), kName);
  ASSERT_EQ(padded.tensors.size(), 1u);
  EXPECT_THAT(padded.tensors[0].data, ElementsAre(7.0f));
  EXPECT_TRUE(parse_safetensors(file_bytes("{}"), kName).tensors.empty());
}

TEST(SafetensorsSerialize, HeaderIsPaddedTo8BytesAndParsesBack) {
  for (int len = 0; len < 20; ++len) {
    SafetensorsFile file;
    if (len > 0) file.metadata["k"] = std::string(static_cast<std::size_t>(len), 'x');
    file.tensors.push_back({"t", {3}, {1.0f, 2.0f, 3.0f}});
    const std::string bytes = serialize_safetensors(file);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    EXPECT_EQ(n % 8, 0u) << "metadata length " << len;
    EXPECT_EQ(bytes.size(), 8 + n + 12);
    EXPECT_EQ(bytes[8], '{');
    const std::string header = bytes.substr(8, n);
    EXPECT_EQ(header.find_first_not_of(' ', header.rfind('}') + 1), std::string::npos);
    const SafetensorsFile back = parse_safetensors(bytes, kName);
    EXPECT_EQ(back.metadata, file.metadata);
    ASSERT_EQ(back.tensors.size(), 1u);
    EXPECT_THAT(back.tensors[0].data, ElementsAre(1.0f, 2.0f, 3.0f));
  }
}

TEST(SafetensorsSerialize, RejectsInconsistentTensors) {
  SafetensorsFile wrong_size;
  wrong_size.tensors.push_back({"a", {2, 2}, {1.0f, 2.0f, 3.0f}});
  EXPECT_THROW(serialize_safetensors(wrong_size), Error);
  SafetensorsFile duplicate;
  duplicate.tensors.push_back({"a", {1}, {1.0f}});
  duplicate.tensors.push_back({"a", {1}, {2.0f}});
  EXPECT_THROW(serialize_safetensors(duplicate), Error);
  SafetensorsFile reserved;
  reserved.tensors.push_back({"__metadata__", {1}, {1.0f}});
  EXPECT_THROW(serialize_safetensors(reserved), Error);
}

// --- Files ---------------------------------------------------------------------

TEST(SafetensorsFileIo, RoundTripIsBitExact) {
  test::TempDir dir;
  SafetensorsFile file;
  file.metadata = {{"epoch", "17"},
                   {"config", R"({"lr": 0.01, "name": "a \"quoted\" value"})"},
                   {"note", "unicode: é ∑ 日本"}};
  const float inf = std::numeric_limits<float>::infinity();
  file.tensors.push_back({"special", {2, 4},
                          {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                           std::numeric_limits<float>::denorm_min(),
                           std::numeric_limits<float>::max(), 0.1f}});
  std::vector<float> big(1000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::sin(static_cast<float>(i)) * 1e-3f;
  file.tensors.push_back({"big", {10, 10, 10}, big});
  file.tensors.push_back({"scalar", {}, {3.25f}});

  const auto path = dir.path() / "model.safetensors";
  write_safetensors(path, file);
  const SafetensorsFile back = read_safetensors(path);
  EXPECT_EQ(back.metadata, file.metadata);
  ASSERT_EQ(back.tensors.size(), 3u);
  for (const Tensor32& t : file.tensors) {
    const Tensor32* r = back.find(t.name);
    ASSERT_NE(r, nullptr) << t.name;
    EXPECT_EQ(r->shape, t.shape) << t.name;
    expect_bit_equal(r->data, t.data);
  }
  // Writing what was read gives the same bytes.
  EXPECT_EQ(serialize_safetensors(back), test::read_file(path));
}

TEST(SafetensorsFileIo, AtomicWriteLeavesNoTemporaryFile) {
  test::TempDir dir;
  const auto path = dir.path() / "model.safetensors";
  write_safetensors(path, model_to_safetensors({3, 2, 2}, iota_params({3, 2, 2})));
  write_safetensors(path, model_to_safetensors({3, 2, 2}, iota_params({3, 2, 2}, 1.0f)));
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    names.push_back(e.path().filename().string());
  }
  EXPECT_THAT(names, ElementsAre("model.safetensors"));
  expect_bit_equal(model_from_safetensors(read_safetensors(path), {3, 2, 2}, path.string()),
                   iota_params({3, 2, 2}, 1.0f));
}

TEST(SafetensorsFileIo, FailedWritesThrowAndLeaveTheOldFile) {
  test::TempDir dir;
  const SafetensorsFile file = model_to_safetensors({3, 2, 2}, iota_params({3, 2, 2}));
  EXPECT_THROW(write_safetensors(dir.path() / "missing" / "model.safetensors", file), Error);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "missing"));

  const auto path = dir.path() / "model.safetensors";
  write_safetensors(path, file);
  const std::string before = test::read_file(path);
  SafetensorsFile bad = file;
  bad.tensors[0].data.pop_back();  // inconsistent: fails before anything is written
  EXPECT_THROW(write_safetensors(path, bad), Error);
  EXPECT_EQ(test::read_file(path), before);

  // The target is a directory: the rename fails, the directory stays.
  std::filesystem::create_directory(dir.path() / "adir");
  EXPECT_THROW(write_safetensors(dir.path() / "adir", file), Error);
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() / "adir"));
  EXPECT_EQ(test::read_file(path), before);
}

TEST(SafetensorsFileIo, MissingFileIsADataError) {
  test::TempDir dir;
  const auto path = dir.path() / "nope.safetensors";
  try {
    read_safetensors(path);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr(path.string()), HasSubstr("cannot open")));
  }
}

TEST(SafetensorsFileIo, FilesAreCheckedLikeBytes) {
  test::TempDir dir;
  const auto path = dir.path() / "bad.safetensors";
  test::write_file(path, le64(uint64_t{1} << 63) + "{}");
  try {
    read_safetensors(path);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_THAT(e.what(),
                AllOf(HasSubstr(path.string() + ": "),
                      HasSubstr("header length 9223372036854775808 exceeds the 2 bytes")));
  }
  test::write_file(path, "\x01\x02\x03");
  EXPECT_THROW(read_safetensors(path), DataError);
  test::write_file(path, kReferenceBytes.substr(0, kReferenceBytes.size() - 1));
  EXPECT_THROW(read_safetensors(path), DataError);
  test::write_file(path, kReferenceBytes);
  EXPECT_EQ(read_safetensors(path).tensors.size(), 2u);
}

// --- Malformed files -----------------------------------------------------------

const std::string kEntry8 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

TEST(SafetensorsMalformed, TooShortForTheLength) {
  EXPECT_THAT(parse_error(""), AllOf(HasSubstr(kName + ": "), HasSubstr("0 bytes, shorter")));
  EXPECT_THAT(parse_error("\x02\0\0\0\0\0\0"s), HasSubstr("7 bytes, shorter"));
}

TEST(SafetensorsMalformed, HeaderLengthBeyondTheFile) {
  EXPECT_THAT(parse_error(le64(100) + "{}"), HasSubstr("header length 100 exceeds the 2 bytes"));
  // Must be an error, not an allocation or a wrapped-around bounds check.
  EXPECT_THAT(parse_error(le64(std::numeric_limits<uint64_t>::max()) + "{}"),
              HasSubstr("header length 18446744073709551615 exceeds"));
  EXPECT_THAT(parse_error(le64(uint64_t{1} << 63) + "{}"), HasSubstr("exceeds"));
  EXPECT_THAT(parse_error(le64(uint64_t{1} << 63)), HasSubstr("exceeds the 0 bytes"));
}

TEST(SafetensorsMalformed, InvalidJson) {
  EXPECT_THAT(parse_error(file_bytes(R"({"a": )")),
              AllOf(HasSubstr(kName + ": invalid JSON"), HasSubstr("parse error")));
  EXPECT_THAT(parse_error(file_bytes("{\"a\":{}}\0\0\0"s)), HasSubstr("invalid JSON"));
  EXPECT_THAT(parse_error(file_bytes("{\"\xff\":{}}"s)), HasSubstr("invalid JSON"));
  EXPECT_THAT(parse_error(file_bytes(R"({"a":1,"a":2})")), HasSubstr("duplicate key \"a\""));
}

TEST(SafetensorsMalformed, HeaderNotAnObject) {
  EXPECT_THAT(parse_error(file_bytes("[1, 2]")), HasSubstr("header is not a JSON object"));
  EXPECT_THAT(parse_error(file_bytes("")), HasSubstr("header is not a JSON object"));
  EXPECT_THAT(parse_error(file_bytes(" {}")), HasSubstr("header is not a JSON object"));
}

TEST(SafetensorsMalformed, TensorEntryFields) {
  EXPECT_THAT(parse_error(file_bytes(R"({"a":[0]})")),
              HasSubstr("tensor \"a\": entry is not a JSON object"));
  EXPECT_THAT(parse_error(file_bytes(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", f32s({1, 2}))),
              HasSubstr("tensor \"a\": missing \"dtype\""));
  EXPECT_THAT(parse_error(file_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})")),
              HasSubstr("missing \"shape\""));
  EXPECT_THAT(parse_error(file_bytes(R"({"a":{"dtype":"F32","shape":[2]}})")),
              HasSubstr("missing \"data_offsets\""));
  EXPECT_THAT(
      parse_error(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})")),
      HasSubstr("unknown field \"x\""));
  EXPECT_THAT(parse_error(file_bytes(R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})")),
              HasSubstr("dtype is not a string"));
  EXPECT_THAT(parse_error(file_bytes(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})")),
              HasSubstr("shape is not an array"));
  EXPECT_THAT(parse_error(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})")),
              HasSubstr("data_offsets is not an array [begin, end]"));
}

TEST(SafetensorsMalformed, UnsupportedDtypes) {
  for (const char* dtype : {"F64", "F16", "BF16", "I64"}) {
    const std::string header = std::string(R"({"w":{"dtype":")") + dtype +
                               R"(","shape":[1],"data_offsets":[0,8]}})";
    EXPECT_THAT(parse_error(file_bytes(header, std::string(8, '\0'))),
                HasSubstr(std::string("tensor \"w\": dtype ") + dtype +
                          " not supported; save float32"));
  }
  EXPECT_THAT(parse_error(file_bytes(R"({"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})",
                                     std::string(4, '\0'))),
              HasSubstr("unknown dtype \"Q7\""));
}

TEST(SafetensorsMalformed, BadShapes) {
  const auto with_shape = [](const std::string& shape) {
    return file_bytes(R"({"a":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,8]}})",
                      f32s({1, 2}));
  };
  EXPECT_THAT(parse_error(with_shape("[-2]")), HasSubstr("shape[0] is negative (-2)"));
  EXPECT_THAT(parse_error(with_shape("[1.5]")), HasSubstr("shape[0] is not an unsigned integer"));
  EXPECT_THAT(parse_error(with_shape("[\"2\"]")), HasSubstr("not an unsigned integer"));
  EXPECT_THAT(parse_error(with_shape("[1e30]")), HasSubstr("not an unsigned integer"));
  EXPECT_THAT(parse_error(with_shape("[4611686018427387904,4611686018427387904]")),
              HasSubstr("is too large"));
  // The product overflows before a zero dimension would bring it back.
  EXPECT_THAT(parse_error(with_shape("[4294967296,4294967296,0]")), HasSubstr("is too large"));
  EXPECT_THAT(parse_error(with_shape("[18446744073709551615]")), HasSubstr("is too large"));
}

TEST(SafetensorsMalformed, BadOffsets) {
  const auto two = [](const std::string& a_offsets, const std::string& b_offsets,
                      std::size_t data_bytes) {
    return file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":)" + a_offsets +
                          R"(},"b":{"dtype":"F32","shape":[2],"data_offsets":)" + b_offsets +
                          "}}",
                      std::string(data_bytes, '\0'));
  };
  EXPECT_THAT(parse_error(two("[0,8]", "[4,12]", 12)),
              AllOf(HasSubstr("tensor \"b\" begins at byte 4"),
                    HasSubstr("previous tensor \"a\" ends at 8 (overlap)")));
  EXPECT_THAT(parse_error(two("[0,8]", "[0,8]", 8)), HasSubstr("(overlap)"));
  EXPECT_THAT(parse_error(two("[0,8]", "[12,20]", 20)),
              HasSubstr("tensor \"b\" begins at byte 12 but the previous tensor \"a\" ends at 8 "
                        "(gap)"));
  EXPECT_THAT(parse_error(two("[4,12]", "[12,20]", 20)),
              HasSubstr("tensor \"a\" begins at byte 4 but the data begins at 0 (gap)"));
  EXPECT_THAT(parse_error(two("[0,8]", "[8,16]", 20)), HasSubstr("4 bytes after the last tensor"));
  EXPECT_THAT(parse_error(two("[0,8]", "[8,400]", 16)),
              HasSubstr("tensor \"b\": data_offsets [8, 400] run past the end of the data (16 "
                        "bytes)"));
  EXPECT_THAT(parse_error(two("[8,0]", "[8,16]", 16)), HasSubstr("end before they begin"));
  EXPECT_THAT(parse_error(two("[0,-8]", "[8,16]", 16)), HasSubstr("data_offsets[1] is negative"));
  EXPECT_THAT(parse_error(two("[0,18446744073709551615]", "[8,16]", 16)),
              HasSubstr("run past the end"));
}

TEST(SafetensorsMalformed, ByteLengthMismatch) {
  EXPECT_THAT(parse_error(file_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                     f32s({1, 2}))),
              HasSubstr("hold 8 bytes, but shape [3] of F32 needs 12"));
}

TEST(SafetensorsMalformed, TruncatedData) {
  const std::string whole = file_bytes(R"({"a":)" + kEntry8 + "}", f32s({1, 2}));
  EXPECT_NO_THROW(parse_safetensors(whole, kName));
  for (std::size_t cut = 1; cut <= 8; ++cut) {
    EXPECT_THAT(parse_error(whole.substr(0, whole.size() - cut)),
                AllOf(HasSubstr("run past the end"), HasSubstr("truncated file?")));
  }
}

TEST(SafetensorsMalformed, Metadata) {
  EXPECT_THAT(parse_error(file_bytes(R"({"__metadata__":{"epoch":3}})")),
              HasSubstr("__metadata__ value of \"epoch\" is not a string (3)"));
  EXPECT_THAT(parse_error(file_bytes(R"({"__metadata__":{"c":{"lr":1}}})")),
              HasSubstr("not a string"));
  EXPECT_THAT(parse_error(file_bytes(R"({"__metadata__":["x"]})")),
              HasSubstr("__metadata__ is not a JSON object"));
}

// Cutting a valid file anywhere, or flipping any one byte, gives a clean error or
// a valid file, never a crash (run under the sanitizers, GCN_SANITIZE=ON).
TEST(SafetensorsMalformed, EveryPrefixAndByteFlipIsHandled) {
  const std::string good = kReferenceBytes;
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_THROW(parse_safetensors(std::string_view(good).substr(0, n), kName), DataError) << n;
  }
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (int flip : {0x01, 0x80, 0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ flip);
      try {
        parse_safetensors(bad, kName);
      } catch (const DataError&) {
      }
    }
  }
}

// --- The model in PyG's layout ---------------------------------------------------

TEST(CheckpointModel, WeightsAreTransposedToPygLayout) {
  const ModelShape shape{3, 2, 4};  // F, H, C
  const ParamLayout layout(shape);
  const std::vector<float> flat = iota_params(shape);
  const SafetensorsFile file = model_to_safetensors(shape, flat, {{"epoch", "5"}});
  EXPECT_EQ(file.metadata.at("epoch"), "5");
  ASSERT_EQ(file.tensors.size(), 4u);

  const Tensor32* w1 = file.find("conv1.lin.weight");
  const Tensor32* b1 = file.find("conv1.bias");
  const Tensor32* w2 = file.find("conv2.lin.weight");
  const Tensor32* b2 = file.find("conv2.bias");
  ASSERT_TRUE(w1 && b1 && w2 && b2);
  EXPECT_THAT(w1->shape, ElementsAre(2, 3));  // (H, F)
  EXPECT_THAT(b1->shape, ElementsAre(2));
  EXPECT_THAT(w2->shape, ElementsAre(4, 2));  // (C, H)
  EXPECT_THAT(b2->shape, ElementsAre(4));
  for (int f = 0; f < 3; ++f) {
    for (int h = 0; h < 2; ++h) {
      EXPECT_EQ(w1->data[h * 3 + f], flat[layout.find("conv1.lin.weight")->offset + f * 2 + h]) << "f=" << f << " h=" << h;
    }
  }
  for (int h = 0; h < 2; ++h) {
    for (int c = 0; c < 4; ++c) {
      EXPECT_EQ(w2->data[c * 2 + h], flat[layout.find("conv2.lin.weight")->offset + h * 4 + c]) << "h=" << h << " c=" << c;
    }
  }
  // Spelled out: W1 (F=3, H=2) is [[0,1],[2,3],[4,5]]; PyG's weight is its transpose.
  EXPECT_THAT(w1->data, ElementsAre(0, 2, 4, 1, 3, 5));
  EXPECT_THAT(b1->data, ElementsAre(6, 7));
  EXPECT_THAT(w2->data, ElementsAre(8, 12, 9, 13, 10, 14, 11, 15));
  EXPECT_THAT(b2->data, ElementsAre(16, 17, 18, 19));

  expect_bit_equal(model_from_safetensors(file, shape, kName), flat);
}

TEST(CheckpointModel, ResumeStateRoundTripsWithPrefixes) {
  test::TempDir dir;
  const ModelShape shape{7, 5, 3};
  const std::vector<float> params = iota_params(shape, 0.5f);
  const std::vector<float> m = iota_params(shape, 1000.0f);
  const std::vector<float> v = iota_params(shape, 2000.0f);
  SafetensorsFile file = model_to_safetensors(shape, params, {{"epoch", "9"}, {"adam_step", "9"}});
  add_flat(file, kAdamExpAvgPrefix, shape, m);
  add_flat(file, kAdamExpAvgSqPrefix, shape, v);
  EXPECT_THROW(add_flat(file, kAdamExpAvgPrefix, shape, m), Error);  // already there
  EXPECT_NE(file.find("optimizer.exp_avg.conv1.lin.weight"), nullptr);
  EXPECT_NE(file.find("optimizer.exp_avg_sq.conv2.bias"), nullptr);

  const auto path = dir.path() / "state.safetensors";
  write_safetensors(path, file);
  const SafetensorsFile back = read_safetensors(path);
  EXPECT_EQ(get_metadata(back, "adam_step", path.string()), "9");
  EXPECT_THROW(get_metadata(back, "config", path.string()), DataError);
  // A resume checkpoint also loads as a plain model (--init).
  expect_bit_equal(model_from_safetensors(back, shape, path.string()), params);
  expect_bit_equal(get_flat(back, kAdamExpAvgPrefix, shape, path.string()), m);
  expect_bit_equal(get_flat(back, kAdamExpAvgSqPrefix, shape, path.string()), v);
  const ModelShape inferred = shape_from_safetensors(back, path.string());
  EXPECT_EQ(inferred.n_features, 7);
  EXPECT_EQ(inferred.hidden, 5);
  EXPECT_EQ(inferred.n_classes, 3);
}

TEST(CheckpointModel, MissingTensor) {
  SafetensorsFile file = model_to_safetensors({3, 2, 4}, iota_params({3, 2, 4}));
  file.tensors.erase(file.tensors.begin() + 3);  // conv2.bias
  try {
    model_from_safetensors(file, {3, 2, 4}, "m.safetensors");
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_THAT(e.what(), HasSubstr("m.safetensors: tensor \"conv2.bias\" missing (expected "
                                    "shape [4] for gcn 3-2-4)"));
  }
  EXPECT_THAT(
      [&] {
        try {
          get_flat(file, kAdamExpAvgPrefix, {3, 2, 4}, "m.safetensors");
        } catch (const DataError& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      HasSubstr("tensor \"optimizer.exp_avg.conv1.lin.weight\" missing"));
}

TEST(CheckpointModel, WrongShapeNamesTheTensorAndBothShapes) {
  const SafetensorsFile file = model_to_safetensors({5, 8, 3}, iota_params({5, 8, 3}));
  try {
    model_from_safetensors(file, {5, 16, 3}, "m.safetensors");
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_THAT(e.what(), HasSubstr("m.safetensors: tensor \"conv1.lin.weight\" has shape [8, 5], "
                                    "expected [16, 5] for gcn 5-16-3"));
  }
  try {
    model_from_safetensors(file, {5, 8, 4}, "m.safetensors");
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("tensor \"conv2.lin.weight\" has shape [3, 8], expected [4, 8]"));
  }
}

TEST(CheckpointModel, ExtraTensorIsRejected) {
  SafetensorsFile file = model_to_safetensors({3, 2, 4}, iota_params({3, 2, 4}));
  file.tensors.push_back({"conv3.lin.weight", {1}, {0.0f}});
  try {
    model_from_safetensors(file, {3, 2, 4}, "m.safetensors");
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_THAT(e.what(), HasSubstr("m.safetensors: unexpected tensor \"conv3.lin.weight\""));
  }
  file.tensors.back().name = "optimizer.something_else";
  EXPECT_THROW(model_from_safetensors(file, {3, 2, 4}, "m.safetensors"), DataError);
}

TEST(CheckpointModel, ShapeFromFile) {
  const SafetensorsFile file = model_to_safetensors({1433, 32, 7}, iota_params({1433, 32, 7}));
  const ModelShape s = shape_from_safetensors(file, kName);
  EXPECT_EQ(s.n_features, 1433);
  EXPECT_EQ(s.hidden, 32);
  EXPECT_EQ(s.n_classes, 7);

  SafetensorsFile inconsistent = file;
  for (Tensor32& t : inconsistent.tensors) {
    if (t.name == "conv2.lin.weight") t = {t.name, {7, 16}, std::vector<float>(7 * 16)};
  }
  EXPECT_THAT(
      [&] {
        try {
          shape_from_safetensors(inconsistent, kName);
        } catch (const DataError& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      AllOf(HasSubstr(kName + ": inconsistent model shapes"),
            HasSubstr("conv2.lin.weight is [7, 16], expected [7, 32]")));

  SafetensorsFile missing;
  missing.tensors.push_back({"weight", {2}, {1, 2}});
  EXPECT_THROW(shape_from_safetensors(missing, kName), DataError);

  SafetensorsFile vector_weight = file;
  vector_weight.tensors[0] = {vector_weight.tensors[0].name, {3}, {1, 2, 3}};
  EXPECT_THROW(shape_from_safetensors(vector_weight, kName), DataError);
}

TEST(CheckpointModel, WrongFlatSizeIsAnError) {
  EXPECT_THROW(model_to_safetensors({3, 2, 4}, std::vector<float>(5)), Error);
}

}  // namespace
}  // namespace gcn
