/*
 * Encode a binary PPM (P6, maxval 255) to a baseline JPEG with a dnnjpeg table,
 * using libjpeg (libjpeg-turbo or mozjpeg) and a header from `dnnjpeg export --format c`.
 *
 *   gcc -O2 -I plugins/c example_encode.c -o example_encode -ljpeg      (from plugins/c: -I .)
 *   ./example_encode in.ppm out.jpg
 *
 * Another table: define DNNJPEG_HEADER, DNNJPEG_LUMA, DNNJPEG_CHROMA, DNNJPEG_H_SAMP and
 * DNNJPEG_V_SAMP on the command line (see plugins/c/README.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>

#ifndef DNNJPEG_HEADER
#define DNNJPEG_HEADER "tables/resnet50-q50.h"
#define DNNJPEG_LUMA dnnjpeg_resnet50_q50_luma
#define DNNJPEG_CHROMA dnnjpeg_resnet50_q50_chroma
#define DNNJPEG_H_SAMP DNNJPEG_RESNET50_Q50_Y_H_SAMP_FACTOR
#define DNNJPEG_V_SAMP DNNJPEG_RESNET50_Q50_Y_V_SAMP_FACTOR
#endif
#include DNNJPEG_HEADER

static unsigned char *read_ppm(const char *path, int *width, int *height)
{
    FILE *f = fopen(path, "rb");
    int maxval;
    unsigned char *pixels;
    size_t size;

    if (f == NULL || fscanf(f, "P6 %d %d %d", width, height, &maxval) != 3 || maxval != 255 || fgetc(f) == EOF) {
        fprintf(stderr, "%s: not a binary PPM with maxval 255\n", path);
        exit(2);
    }
    size = (size_t)*width * (size_t)*height * 3;
    pixels = malloc(size);
    if (pixels == NULL || fread(pixels, 1, size, f) != size) {
        fprintf(stderr, "%s: truncated PPM\n", path);
        exit(2);
    }
    fclose(f);
    return pixels;
}

int main(int argc, char **argv)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned int luma[64], chroma[64];
    unsigned char *pixels;
    int width, height, i;
    FILE *out;

    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.ppm OUT.jpg\n", argv[0]);
        return 2;
    }
    pixels = read_ppm(argv[1], &width, &height);
    out = fopen(argv[2], "wb");
    if (out == NULL) {
        fprintf(stderr, "%s: cannot write\n", argv[2]);
        return 2;
    }
    for (i = 0; i < 64; i++) { /* jpeg_add_quant_table() takes unsigned int */
        luma[i] = DNNJPEG_LUMA[i];
        chroma[i] = DNNJPEG_CHROMA[i];
    }

    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, out);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    /* The tables, unscaled (scale factor 100); TRUE = baseline (steps <= 255). */
    jpeg_add_quant_table(&cinfo, 0, luma, 100, TRUE);
    jpeg_add_quant_table(&cinfo, 1, chroma, 100, TRUE);
    cinfo.comp_info[0].quant_tbl_no = 0; /* Y */
    cinfo.comp_info[1].quant_tbl_no = 1; /* Cb */
    cinfo.comp_info[2].quant_tbl_no = 1; /* Cr */
    cinfo.comp_info[0].h_samp_factor = DNNJPEG_H_SAMP;
    cinfo.comp_info[0].v_samp_factor = DNNJPEG_V_SAMP;
    for (i = 1; i < 3; i++) {
        cinfo.comp_info[i].h_samp_factor = 1;
        cinfo.comp_info[i].v_samp_factor = 1;
    }

    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = pixels + (size_t)cinfo.next_scanline * (size_t)width * 3;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    fclose(out);
    free(pixels);
    return 0;
}
